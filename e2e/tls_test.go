package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep/lockstep/internal/testcert"
)

// TestTLS starts three `lockstep serve` processes with https client URLs
// requiring client certificates and mutual TLS between them, then uses
// them with lockstep's client commands and, when installed, etcdctl.
func TestTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: multi-process test skipped with -short")
	}
	bin := lockstepBinary(t)
	cert, key := testcert.WriteFiles(t, t.TempDir())
	ports := freePorts(t, 6)
	var initial, clientURLs []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("t%d=https://127.0.0.1:%d", i+1, ports[2*i+1]))
		clientURLs = append(clientURLs, fmt.Sprintf("https://127.0.0.1:%d", ports[2*i]))
	}
	for i := range 3 {
		p := startProc(t, bin, "serve",
			"--name", fmt.Sprintf("t%d", i+1),
			"--data-dir", filepath.Join(t.TempDir(), "data"),
			"--listen-client-urls", clientURLs[i],
			"--listen-peer-urls", fmt.Sprintf("https://127.0.0.1:%d", ports[2*i+1]),
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", "e2e-tls",
			"--cert-file", cert, "--key-file", key, "--trusted-ca-file", cert, "--client-cert-auth",
			"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", cert, "--peer-client-cert-auth",
			"--log-level", "warn",
		)
		p.waitOutput(t, "serving clients on https://", 30*time.Second)
	}
	run := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	creds := []string{"--cacert", cert, "--cert", cert, "--key", key}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := run(append([]string{"put", "--endpoints", clientURLs[0], "tk", "tv"}, creds...)...)
		if err == nil && out == "OK\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lockstep put over TLS: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := run(append([]string{"get", "--endpoints", clientURLs[2], "tk"}, creds...)...); err != nil || out != "tk\ntv\n" {
		t.Fatalf("lockstep get over TLS through another member: %v\n%s", err, out)
	}
	if out, err := run("get", "--endpoints", clientURLs[1], "--cacert", cert, "--timeout", "2s", "tk"); err == nil {
		t.Fatalf("lockstep get without a client certificate succeeded: %s", out)
	}
	if etcdctl, err := exec.LookPath("etcdctl"); err == nil {
		cmd := exec.Command(etcdctl, "--endpoints", strings.Join(clientURLs, ","), "--cacert", cert, "--cert", cert, "--key", key, "get", "tk")
		cmd.Env = append(cleanEnv(), "ETCDCTL_API=3")
		if out, err := cmd.CombinedOutput(); err != nil || string(out) != "tk\ntv\n" {
			t.Fatalf("etcdctl get over TLS: %v\n%s", err, out)
		}
	}
}
