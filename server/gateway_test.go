package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// etcd's HTTP/JSON API works on the client port beside gRPC: a put and a
// range through the gateway, read back by the etcd Go client.
func TestHTTPGateway(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.waitLeader()
	follower := (lead + 1) % 3
	b64 := base64.StdEncoding.EncodeToString
	post := func(path, body string) map[string]any {
		t.Helper()
		resp, err := http.Post("http://"+c.clients[follower]+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s %s: status %d: %s", path, body, resp.StatusCode, b)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("POST %s: %v in %s", path, err, b)
		}
		return out
	}
	post("/v3/kv/put", `{"key": "`+b64([]byte("gw/k"))+`", "value": "`+b64([]byte("hello"))+`"}`)
	out := post("/v3/kv/range", `{"key": "`+b64([]byte("gw/k"))+`"}`)
	kvs, _ := out["kvs"].([]any)
	if len(kvs) != 1 {
		t.Fatalf("range through the gateway: got %v", out)
	}
	if v, _ := kvs[0].(map[string]any)["value"].(string); v != b64([]byte("hello")) {
		t.Fatalf("range through the gateway: value %q, want %q", v, b64([]byte("hello")))
	}
	// etcd's field names, zero fields left out.
	if _, ok := kvs[0].(map[string]any)["mod_revision"]; !ok {
		t.Fatalf("range through the gateway: no mod_revision in %v", kvs[0])
	}
	if _, ok := kvs[0].(map[string]any)["lease"]; ok {
		t.Fatalf("range through the gateway: a zero lease in %v", kvs[0])
	}
	if _, ok := out["header"].(map[string]any)["cluster_id"]; !ok {
		t.Fatalf("range through the gateway: no header.cluster_id in %v", out)
	}
	got, err := c.client(lead).Get(testCtx(t), "gw/k")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "hello" {
		t.Fatalf("gRPC get of the gateway's put: %v, %v", got, err)
	}
	// A bad request gets an error status, not a crash.
	resp, err := http.Post("http://"+c.clients[follower]+"/v3/kv/range", "application/json", strings.NewReader(`{"key": 7`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("malformed JSON: status 200")
	}
}

// errorLog records the messages logged at Error level or above.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (h *errorLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *errorLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorLog) WithGroup(string) slog.Handler      { return h }

// A member that is stopped, gateway and all, logs no error: a normal stop
// must not read as a failure in the operator's logs.
func TestStopLogsNoErrors(t *testing.T) {
	for i := range 5 {
		h := &errorLog{}
		c := newTestClusterWith(t, 1, func(cfg *Config) { cfg.Logger = slog.New(h) })
		c.waitLeader()
		resp, err := http.Post("http://"+c.clients[0]+"/v3/kv/range", "application/json", strings.NewReader(`{"key": "aw=="}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.stopAll()
		h.mu.Lock()
		msgs := h.msgs
		h.mu.Unlock()
		if len(msgs) > 0 {
			t.Fatalf("round %d: stopping logged errors: %q", i, msgs)
		}
	}
}
