package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep/lockstep/server/servertest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// TestMain removes the built binary after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// lockstepBinary builds cmd/lockstep once per test binary, skipping the
// test (with the reason) if the e2e tests should not run or it cannot build.
func lockstepBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: multi-process test skipped with -short")
	}
	buildOnce.Do(func() {
		if _, err := exec.LookPath("go"); err != nil {
			buildErr = fmt.Errorf("no go command on PATH: %v", err)
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "lockstep-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "lockstep")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/lockstep/lockstep/cmd/lockstep").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/lockstep: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Skipf("e2e: cannot build the lockstep binary, skipping: %v", buildErr)
	}
	return binPath
}

// freePorts returns n distinct free TCP ports on 127.0.0.1 (free when
// asked; another process could take one before the member listens, which
// the member then reports).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// proc is a running lockstep process with its combined output.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.Env = cleanEnv()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting lockstep %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of lockstep %s:\n%s", strings.Join(args, " "), p.output())
		}
	})
	return p
}

// cleanEnv drops LOCKSTEP_* settings of the caller's environment, which
// would change the flags under test.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "LOCKSTEP_") {
			env = append(env, e)
		}
	}
	return env
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// waitExit waits for the process to exit by itself.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %v; output:\n%s", timeout, p.output())
		return nil
	}
}

func (p *proc) waitOutput(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.output(), want) {
		select {
		case <-p.done:
			t.Fatalf("process exited (%v) before printing %q; output:\n%s", p.err, want, p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output within %v; output:\n%s", want, timeout, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// member is one `lockstep serve` process's settings.
type member struct {
	name               string
	clientURL, peerURL string
	dataDir            string
	p                  *proc
}

func (m *member) endpoint() string { return strings.TrimPrefix(m.clientURL, "http://") }

type procCluster struct {
	t       *testing.T
	bin     string
	members []*member
	initial string
	// initialFor, when set, is member i's own --initial-cluster: the same
	// members, with the others' peer URLs replaced (by link proxies).
	initialFor []string
	// links[i][j] is the proxy member i dials member j through, if any.
	links [][]*servertest.Link
}

func newProcCluster(t *testing.T, n int) *procCluster {
	t.Helper()
	c := buildProcCluster(t, n)
	for i := range c.members {
		c.start(i)
	}
	return c
}

// newLinkedProcCluster is newProcCluster with every member reaching every
// other through a proxy of that link (servertest.Link), so that a test can
// cut a member off (isolate).
func newLinkedProcCluster(t *testing.T, n int) *procCluster {
	t.Helper()
	c := buildProcCluster(t, n)
	c.links = make([][]*servertest.Link, n)
	for i := range c.members {
		c.links[i] = make([]*servertest.Link, n)
		var parts []string
		for j, mj := range c.members {
			u := mj.peerURL
			if i != j {
				c.links[i][j] = servertest.NewLink(t, strings.TrimPrefix(mj.peerURL, "http://"))
				u = "http://" + c.links[i][j].Addr()
			}
			parts = append(parts, mj.name+"="+u)
		}
		c.initialFor = append(c.initialFor, strings.Join(parts, ","))
	}
	for i := range c.members {
		c.start(i)
	}
	return c
}

// isolate cuts member i off from the others in both directions (cut) or
// restores every link (i < 0 or !cut restores all).
func (c *procCluster) isolate(i int, cut bool) {
	for a := range c.links {
		for b, l := range c.links[a] {
			if l != nil && (!cut || a == i || b == i) {
				l.SetCut(cut)
			}
		}
	}
}

func buildProcCluster(t *testing.T, n int) *procCluster {
	t.Helper()
	bin := lockstepBinary(t)
	ports := freePorts(t, 2*n)
	c := &procCluster{t: t, bin: bin}
	var parts []string
	for i := 0; i < n; i++ {
		m := &member{
			name:      fmt.Sprintf("p%d", i+1),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			dataDir:   filepath.Join(t.TempDir(), "data"),
		}
		c.members = append(c.members, m)
		parts = append(parts, m.name+"="+m.peerURL)
	}
	c.initial = strings.Join(parts, ",")
	return c
}

// start starts member i with --initial-cluster-state new, which also
// resumes a member from its data dir.
func (c *procCluster) start(i int) { c.startState(i, "new") }

func (c *procCluster) startState(i int, state string) {
	m := c.members[i]
	m.p = startProc(c.t, c.bin, "serve",
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.clientURL,
		"--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerURL,
		"--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster", c.initialOf(i),
		"--initial-cluster-state", state,
		"--initial-cluster-token", "e2e",
		"--log-level", "warn",
	)
	m.p.waitOutput(c.t, "serving clients on", 30*time.Second)
}

func (c *procCluster) initialOf(i int) string {
	if c.initialFor != nil {
		return c.initialFor[i]
	}
	return c.initial
}

func (c *procCluster) endpoints(except ...int) []string {
	var eps []string
outer:
	for i, m := range c.members {
		for _, e := range except {
			if e == i {
				continue outer
			}
		}
		eps = append(eps, m.endpoint())
	}
	return eps
}

// pinnedClients returns n clients, client i talking to member i%len only.
func (c *procCluster) pinnedClients(n int) []*clientv3.Client {
	var clis []*clientv3.Client
	for i := 0; i < n; i++ {
		clis = append(clis, newClient(c.t, []string{c.members[i%len(c.members)].endpoint()}))
	}
	return clis
}

func newClient(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// leader polls the members' Status until the running ones agree on a
// leader, and returns its index.
func (c *procCluster) leader(cli *clientv3.Client, skip int) int {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		lead := uint64(0)
		agreed := true
		for i, m := range c.members {
			if i == skip {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cli.Status(ctx, m.endpoint())
			cancel()
			if err != nil || st.Leader == 0 || (lead != 0 && st.Leader != lead) {
				agreed = false
				break
			}
			lead = st.Leader
		}
		if agreed && lead != 0 {
			for i, m := range c.members {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				st, err := cli.Status(ctx, m.endpoint())
				cancel()
				if i != skip && err == nil && st.Header.MemberId == lead {
					return i
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatal("the members did not agree on a leader within 30s")
	return -1
}

func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
