package server

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/lockstep/lockstep/internal/testcert"
)

// With TLS on client URLs (client certificates required) and mutual TLS
// between members, etcd clients holding a certificate work through any
// member, keep-alives forwarded to the leader included; a client without a
// certificate, or without TLS, gets nothing.
func TestTLS(t *testing.T) {
	cert, pool := testcert.New(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	peerTLS := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.ClientTLS = serverTLS
		cfg.PeerTLS = peerTLS
	})
	lead := c.waitLeader()
	follower := (lead + 1) % 3
	ctx := testCtx(t)
	dial := func(tc *tls.Config) *clientv3.Client {
		t.Helper()
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.clients[follower]}, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		return cli
	}
	good := dial(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool})
	ml, err := good.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ml.Members {
		for _, u := range m.ClientURLs {
			if !strings.HasPrefix(u, "https://") {
				t.Errorf("member %s advertises %s, want an https URL", m.Name, u)
			}
		}
	}
	if _, err := good.Put(ctx, "tls/k", "v"); err != nil {
		t.Fatalf("put through a follower over TLS: %v", err)
	}
	got, err := good.Get(ctx, "tls/k")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Fatalf("get over TLS: %v, %v", got, err)
	}
	g, err := good.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	// The follower forwards the keep-alive to the leader's https URL,
	// presenting its own certificate.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ka, err := good.KeepAliveOnce(ctx, g.ID)
		if err == nil && ka.TTL == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keep-alive forwarded over TLS: %v, %v", ka, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	for name, tc := range map[string]*tls.Config{
		"no client certificate": {RootCAs: pool},
		"no TLS":                nil,
	} {
		cli := dial(tc)
		short, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(short, "tls/k")
		cancel()
		if err == nil {
			t.Errorf("%s: a get succeeded", name)
		}
	}
}
