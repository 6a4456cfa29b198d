package server

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A txn without puts or deletes is served as a read, as etcd serves it: it
// adds nothing to the log, yet a follower answers it with the latest write.
// One that may write still goes through the log.
func TestReadOnlyTxnIsServedAsARead(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.waitLeader()
	follower := (lead + 1) % 3
	ctx := testCtx(t)
	writer, reader := c.client(lead), c.client(follower)
	lastIndex := func() uint64 {
		t.Helper()
		st, err := c.servers[lead].r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return uint64(st.LastIndex)
	}
	readOnly := func() *clientv3.TxnResponse {
		t.Helper()
		resp, err := reader.Txn(ctx).
			If(clientv3.Compare(clientv3.Value("rt/k"), "=", "2")).
			Then(clientv3.OpGet("rt/k")).
			Else(clientv3.OpGet("rt/other")).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	// Members publish their client URLs through the log once: wait for
	// those entries, so that only this test's requests add to it.
	c.waitPublished()
	writer.Put(ctx, "rt/k", "1")
	put, err := writer.Put(ctx, "rt/k", "2")
	if err != nil {
		t.Fatal(err)
	}
	before := lastIndex()
	for range 5 {
		resp := readOnly()
		if !resp.Succeeded || string(resp.Responses[0].GetResponseRange().Kvs[0].Value) != "2" {
			t.Fatalf("read-only txn on a follower right after the put: got %v, want the success branch with rt/k=2", resp)
		}
		if resp.Header.Revision != put.Header.Revision {
			t.Fatalf("read-only txn at revision %d, want the put's %d", resp.Header.Revision, put.Header.Revision)
		}
	}
	if after := lastIndex(); after != before {
		t.Fatalf("read-only txns appended %d log entries", after-before)
	}

	// Serializable ranges alone make it a local read; still correct here,
	// since the follower has applied the put by now.
	resp, err := reader.Txn(ctx).Then(clientv3.OpGet("rt/k", clientv3.WithSerializable())).Commit()
	if err != nil || len(resp.Responses) != 1 {
		t.Fatalf("serializable read-only txn: %v, %v", resp, err)
	}

	// A txn that may write (on the branch not taken) is replicated.
	_, err = reader.Txn(context.Background()).
		If(clientv3.Compare(clientv3.Value("rt/k"), "=", "2")).
		Then(clientv3.OpGet("rt/k")).
		Else(clientv3.OpPut("rt/k", "3")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if after := lastIndex(); after != before+1 {
		t.Fatalf("a txn that may write appended %d entries, want 1", after-before)
	}
}
