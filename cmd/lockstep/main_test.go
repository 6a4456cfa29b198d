package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lockstep/lockstep/internal/leaktest"
	"github.com/lockstep/lockstep/server"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestBadFlags checks that every kind of bad invocation exits with status 2
// and a message naming what is wrong, before anything listens.
func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", nil, []string{"serve", "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad int", nil, []string{"serve", "--max-txn-ops", "many"}, "-max-txn-ops"},
		{"name not in cluster", nil, []string{"serve", "--name", "x", "--initial-cluster", "a=http://127.0.0.1:1"}, `--name "x" is not in --initial-cluster (members: a)`},
		{"duplicate name", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1:1,a=http://127.0.0.1:2"}, `--initial-cluster: duplicate member name "a"`},
		{"duplicate url", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1:1,b=http://127.0.0.1:1"}, "--initial-cluster: members \"a\" and \"b\" have the same peer address"},
		{"unparsable url", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://[::1"}, "--initial-cluster: member \"a\": unparsable URL"},
		{"url without port", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1"}, "has no port"},
		{"entry without url", nil, []string{"serve", "--initial-cluster", "a"}, `--initial-cluster: entry "a" is not name=url`},
		{"https without a certificate", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--listen-client-urls", "https://127.0.0.1:2"}, "--listen-client-urls and --advertise-client-urls are https: --cert-file and --key-file are required"},
		{"certificate for http", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--listen-client-urls", "http://127.0.0.1:2", "--cert-file", "c.pem", "--key-file", "k.pem"}, "--listen-client-urls and --advertise-client-urls are http: --cert-file, --key-file, --trusted-ca-file and --client-cert-auth need https URLs"},
		{"mixed schemes", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--listen-client-urls", "http://127.0.0.1:2,https://127.0.0.1:3"}, "mix http and https"},
		{"peer https without a certificate", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=https://127.0.0.1:1", "--listen-peer-urls", "https://127.0.0.1:1"}, "--listen-peer-urls and --initial-cluster are https: --peer-cert-file and --peer-key-file are required"},
		{"client-cert-auth without a CA", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--listen-client-urls", "https://127.0.0.1:2", "--cert-file", "c.pem", "--key-file", "k.pem", "--client-cert-auth"}, "--client-cert-auth needs --trusted-ca-file"},
		{"missing certificate file", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--listen-client-urls", "https://127.0.0.1:2", "--cert-file", "/nonexistent/c.pem", "--key-file", "/nonexistent/k.pem"}, "--cert-file/--key-file: open /nonexistent/c.pem"},
		{"client key without cert", nil, []string{"get", "--key", "k.pem", "k"}, "--cert and --key go together"},
		{"advertise mismatch", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--initial-advertise-peer-urls", "http://127.0.0.1:9"}, "--initial-advertise-peer-urls http://127.0.0.1:9 does not match a's entry http://127.0.0.1:1"},
		{"bad state", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--initial-cluster-state", "old"}, `--initial-cluster-state: "old" is not new or existing`},
		{"existing without data", nil, []string{"serve", "--name", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--initial-cluster-state", "existing", "--data-dir", dir}, "--initial-cluster-state existing: " + dir + " holds no member data"},
		{"request limit too large", nil, []string{"serve", "--max-request-bytes", "4294967296"}, "--max-request-bytes: 4294967296 is not in 1..1073741824"},
		{"bad compaction mode", nil, []string{"serve", "--auto-compaction-mode", "hourly", "--auto-compaction-retention", "1"}, `--auto-compaction-mode/--auto-compaction-retention: mode "hourly" is not periodic or revision`},
		{"bad compaction retention", map[string]string{"LOCKSTEP_AUTO_COMPACTION_RETENTION": "soon"}, []string{"serve"}, `retention "soon" is neither a duration nor a number of hours`},
		{"metrics url without port", nil, []string{"serve", "--listen-metrics-urls", "http://127.0.0.1"}, "--listen-metrics-urls: "},
		{"bad log level", nil, []string{"serve", "--log-level", "loud"}, "--log-level"},
		{"env name not in cluster", map[string]string{"LOCKSTEP_NAME": "fromenv", "LOCKSTEP_INITIAL_CLUSTER": "a=http://127.0.0.1:1"}, []string{"serve"}, `--name "fromenv" is not in --initial-cluster`},
		{"bad env value", map[string]string{"LOCKSTEP_MAX_TXN_OPS": "lots"}, []string{"serve"}, `invalid value "lots" for LOCKSTEP_MAX_TXN_OPS (--max-txn-ops)`},
		{"put arity", nil, []string{"put", "k"}, "want KEY VALUE, got 1 arguments"},
		{"txn bad condition", nil, []string{"txn", "--if-value", "novalue"}, `--if-value "novalue" is not KEY=VALUE`},
		{"get prefix and from-key", nil, []string{"get", "--prefix", "--from-key", "k"}, "exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, stderr := runCmd(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("lockstep %s: got status %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
			}
		})
	}
}

// TestFlagOnCommandLineBeatsEnvironment: LOCKSTEP_NAME is ignored when
// --name is given.
func TestFlagOnCommandLineBeatsEnvironment(t *testing.T) {
	t.Setenv("LOCKSTEP_NAME", "fromenv")
	code, _, stderr := runCmd(t, "serve", "--name", "flag", "--initial-cluster", "a=http://127.0.0.1:1")
	if code != 2 || !strings.Contains(stderr, `--name "flag"`) {
		t.Fatalf("got %d, %q; want the flag's name in the error", code, stderr)
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runCmd(t, "help")
	if code != 0 || !strings.Contains(out, "lockstep txn") || !strings.Contains(out, "--if-value") {
		t.Fatalf("help: got %d, %q", code, out)
	}
	code, out, _ = runCmd(t, "help", "serve")
	if code != 0 || !strings.Contains(out, "-initial-cluster-token") {
		t.Fatalf("help serve: got %d, %q", code, out)
	}
}

// TestClientCommands runs put, get, del, txn and status against a
// one-member cluster in this process.
func TestClientCommands(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Start(server.Config{
		Name:            "solo",
		ClusterID:       server.ClusterID("t"),
		Members:         []server.Member{{Name: "solo", ID: server.MemberID("solo"), PeerURL: "http://" + peer.Addr().String()}},
		DataDir:         t.TempDir(),
		PeerListener:    peer,
		ClientListeners: []net.Listener{client},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	deadline := time.Now().Add(20 * time.Second)
	for s.Leader() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ep := "--endpoints=" + client.Addr().String()
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"put", ep, "k1", "v1"}, "OK\n"},
		{[]string{"put", "k2", "v2", ep, "--prev-kv"}, "OK\n"},
		{[]string{"put", ep, "--prev-kv", "k2", "v2b"}, "OK\nk2\nv2\n"},
		{[]string{"get", ep, "k1"}, "k1\nv1\n"},
		{[]string{"get", ep, "--prefix", "k"}, "k1\nv1\nk2\nv2b\n"},
		{[]string{"get", ep, "--prefix", "--keys-only", "k"}, "k1\nk2\n"},
		{[]string{"get", ep, "--prefix", "--count-only", "k"}, "2\n"},
		{[]string{"get", ep, "--prefix", "--limit=1", "--serializable", "k"}, "k1\nv1\n"},
		{[]string{"get", ep, "--rev=2", "k1"}, "k1\nv1\n"},
		{[]string{"txn", ep, "--if-value", "k1=v1", "--then-put", "k1=v9", "--else-get", "k1"}, "SUCCESS\nOK\n"},
		{[]string{"txn", ep, "--if-value", "k1=v1", "--then-put", "k1=v9", "--else-get", "k1"}, "FAILURE\nk1\nv9\n"},
		{[]string{"txn", ep, "--if-missing", "k3", "--if-version", "k1=2", "--then-put", "k3=new", "--then-del", "k2"}, "SUCCESS\nOK\n1\n"},
		{[]string{"del", ep, "--prefix", "k"}, "2\n"},
		{[]string{"get", ep, "--prefix", "--count-only", "k"}, "0\n"},
	} {
		code, out, stderr := runCmd(t, step.args...)
		if code != 0 || out != step.want {
			t.Fatalf("lockstep %s: got status %d, output %q, stderr %q; want 0, %q", strings.Join(step.args, " "), code, out, stderr, step.want)
		}
	}
	// The member publishes its name and client URLs through the log soon
	// after it starts.
	var code int
	var out, stderr string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if code, out, stderr = runCmd(t, "status", ep); strings.Contains(out, "solo (this)") {
			break
		}
	}
	if code != 0 || !strings.Contains(out, "solo (this)") || !strings.Contains(out, "http://"+client.Addr().String()) {
		t.Fatalf("status: got %d, %q, %q; want the member leading and its client URL", code, out, stderr)
	}
	// bench reports every request it sent, with idle watchers open too.
	for _, args := range [][]string{
		{"bench", ep, "--clients=4", "--conns=2", "--total=200", "--watchers=30", "put"},
		{"bench", ep, "--clients=4", "--total=200", "--consistency=s", "get"},
	} {
		code, out, stderr = runCmd(t, args...)
		if code != 0 || !strings.Contains(out, ": 200 ok, 0 failed in ") {
			t.Fatalf("lockstep %s: got %d, %q, %q; want 200 ok, 0 failed", strings.Join(args, " "), code, out, stderr)
		}
	}
	// A client error is status 1 with the server's message.
	code, _, stderr = runCmd(t, "get", ep, "--rev=1000000", "k1")
	if code != 1 || !strings.Contains(stderr, "required revision is a future revision") {
		t.Fatalf("get at a future revision: got %d, %q", code, stderr)
	}
}
