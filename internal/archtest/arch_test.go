package archtest

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/lockstep/lockstep"

type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages runs `go list` over the module: the rules are checked against
// what the compiler sees, not against a hand-kept list.
func listPackages(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	args := append([]string{"list", "-json=ImportPath,Imports"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	touchSources(t)
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// rel returns the module-relative path of an import ("raft", "kv"), or ""
// for a package outside the module.
func rel(importPath string) string {
	if importPath == module {
		return "."
	}
	if r, ok := strings.CutPrefix(importPath, module+"/"); ok {
		return r
	}
	return ""
}

// inLayer reports whether a module-relative package path is the layer or
// below it (raft, raft/x).
func inLayer(path, layer string) bool {
	return path == layer || strings.HasPrefix(path, layer+"/")
}

// The consensus core must stay pure (STYLE.md rule 1): no network, disk,
// clock, goroutine machinery or global randomness, and nothing of ours.
var forbiddenInRaft = []string{
	"net", "os", "time", "sync", "sync/atomic", "math/rand", "math/rand/v2",
	"crypto/rand", "syscall", "io/fs", "log", "log/slog", "runtime", "unsafe",
	"os/exec", "os/signal", "context",
}

func checkRaftImports(imports []string) []string {
	var bad []string
	for _, imp := range imports {
		for _, f := range forbiddenInRaft {
			if imp == f || strings.HasPrefix(imp, f+"/") && f != "math/rand" {
				bad = append(bad, imp+" (the core does no I/O, keeps no clock and no global state)")
			}
		}
		if r := rel(imp); r != "" {
			bad = append(bad, imp+" (raft imports nothing of ours)")
		}
	}
	return bad
}

// layerRules lists, per layer, the layers of ours it must not import.
var layerRules = map[string][]string{
	"storage":   {"replica", "transport", "server", "kv", "sim", "cmd"},
	"transport": {"replica", "storage", "server", "kv", "sim", "cmd"},
	"vfs":       {"raft", "replica", "storage", "transport", "server", "kv", "sim", "cmd"},
	"kv":        {"raft", "replica", "storage", "transport", "server", "sim", "cmd"},
	"replica":   {"server", "kv", "sim", "cmd"},
	"server":    {"sim", "cmd"},
	"sim":       {"replica", "transport", "server", "cmd"},
}

func checkLayer(p pkg) []string {
	from := rel(p.ImportPath)
	var bad []string
	for layer, forbidden := range layerRules {
		if !inLayer(from, layer) {
			continue
		}
		for _, imp := range p.Imports {
			to := rel(imp)
			for _, f := range forbidden {
				if to != "" && inLayer(to, f) {
					bad = append(bad, imp+" ("+layer+" must not depend on "+f+")")
				}
			}
		}
	}
	// Only the server speaks the etcd API (DESIGN.md); the CLI may use the
	// etcd client, and tests anywhere may.
	if !inLayer(from, "server") && !inLayer(from, "cmd") {
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "go.etcd.io/etcd/") {
				bad = append(bad, imp+" (only server knows the etcd API)")
			}
		}
	}
	// The consensus core is ours.
	for _, imp := range p.Imports {
		for _, other := range []string{"go.etcd.io/raft", "go.etcd.io/etcd/raft", "github.com/hashicorp/raft", "github.com/lni/dragonboat"} {
			if strings.HasPrefix(imp, other) {
				bad = append(bad, imp+" (no other consensus library in the product)")
			}
		}
	}
	return bad
}

func TestRaftImportsNothingImpure(t *testing.T) {
	for _, p := range listPackages(t, module+"/raft") {
		for _, b := range checkRaftImports(p.Imports) {
			t.Errorf("%s imports %s", p.ImportPath, b)
		}
	}
}

func TestLayersDependDownwardOnly(t *testing.T) {
	for _, p := range listPackages(t, "./...") {
		for _, b := range checkLayer(p) {
			t.Errorf("%s imports %s", p.ImportPath, b)
		}
	}
}

// The rules themselves must be able to fail: feed them imports they forbid.
func TestRulesRejectForbiddenImports(t *testing.T) {
	for _, imp := range []string{"time", "net", "os", "sync", "math/rand", "math/rand/v2", module + "/storage"} {
		if got := checkRaftImports([]string{imp}); len(got) == 0 {
			t.Errorf("raft importing %q: got no violation, want one", imp)
		}
	}
	if got := checkRaftImports([]string{"fmt", "errors", "slices", "encoding/binary"}); len(got) != 0 {
		t.Errorf("raft importing pure packages: got %v, want none", got)
	}
	if got := checkLayer(pkg{ImportPath: module + "/storage", Imports: []string{module + "/replica"}}); len(got) == 0 {
		t.Error("storage importing replica: got no violation, want one")
	}
	if got := checkLayer(pkg{ImportPath: module + "/kv", Imports: []string{module + "/raft"}}); len(got) == 0 {
		t.Error("kv importing raft: got no violation, want one")
	}
	if got := checkLayer(pkg{ImportPath: module + "/replica", Imports: []string{"go.etcd.io/etcd/api/v3/etcdserverpb"}}); len(got) == 0 {
		t.Error("replica importing the etcd API: got no violation, want one")
	}
}

// touchSources opens every Go file of the module. go test caches a result
// keyed on the files the test opened, and cannot see what the go list
// subprocess read: without this, adding a forbidden import would not rerun
// the test.
func touchSources(t *testing.T) {
	t.Helper()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".go") || d.Name() == "go.mod") {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			f.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking the module: %v", err)
	}
}
