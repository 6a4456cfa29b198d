package server

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestKVSemantics drives every KV feature through the real etcd client
// against a three-member cluster, each subtest under its own key prefix.
func TestKVSemantics(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitLeader()
	cli := c.client()
	ctx := testCtx(t)

	t.Run("PutGetAndHeader", func(t *testing.T) {
		put, err := cli.Put(ctx, "a/k", "v1")
		if err != nil {
			t.Fatal(err)
		}
		h := put.Header
		if h.ClusterId != ClusterID("test") || c.index(h.MemberId) < 0 || h.Revision < 2 || h.RaftTerm == 0 {
			t.Fatalf("put header %+v: want cluster %x, a member ID, revision >= 2, a term", h, ClusterID("test"))
		}
		get, err := cli.Get(ctx, "a/k")
		if err != nil {
			t.Fatal(err)
		}
		if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "v1" || get.Count != 1 {
			t.Fatalf("get: got %v, want a/k=v1", get.Kvs)
		}
		kv := get.Kvs[0]
		if kv.CreateRevision != h.Revision || kv.ModRevision != h.Revision || kv.Version != 1 {
			t.Fatalf("got create %d mod %d version %d, want %d %d 1", kv.CreateRevision, kv.ModRevision, kv.Version, h.Revision, h.Revision)
		}
		if get.Header.Revision < h.Revision {
			t.Fatalf("get header revision %d below the put's %d", get.Header.Revision, h.Revision)
		}
		missing, err := cli.Get(ctx, "a/missing")
		if err != nil || len(missing.Kvs) != 0 || missing.Count != 0 {
			t.Fatalf("get of a missing key: got %v, %v; want an empty result", missing, err)
		}
	})

	t.Run("RevisionsAndVersions", func(t *testing.T) {
		r1, _ := cli.Put(ctx, "b/k", "1")
		r2, _ := cli.Put(ctx, "b/k", "2")
		if r2.Header.Revision != r1.Header.Revision+1 {
			t.Fatalf("revisions %d then %d, want consecutive", r1.Header.Revision, r2.Header.Revision)
		}
		get, _ := cli.Get(ctx, "b/k")
		kv := get.Kvs[0]
		if kv.Version != 2 || kv.CreateRevision != r1.Header.Revision || kv.ModRevision != r2.Header.Revision {
			t.Fatalf("got version %d create %d mod %d, want 2 %d %d", kv.Version, kv.CreateRevision, kv.ModRevision, r1.Header.Revision, r2.Header.Revision)
		}
		old, err := cli.Get(ctx, "b/k", clientv3.WithRev(r1.Header.Revision))
		if err != nil || string(old.Kvs[0].Value) != "1" {
			t.Fatalf("get at revision %d: got %v, %v; want value 1", r1.Header.Revision, old, err)
		}
		if _, err := cli.Delete(ctx, "b/k"); err != nil {
			t.Fatal(err)
		}
		r3, _ := cli.Put(ctx, "b/k", "3")
		get, _ = cli.Get(ctx, "b/k")
		if kv := get.Kvs[0]; kv.Version != 1 || kv.CreateRevision != r3.Header.Revision {
			t.Fatalf("after delete and put: version %d create %d, want 1 %d", kv.Version, kv.CreateRevision, r3.Header.Revision)
		}
	})

	t.Run("PrefixLimitSortCountKeysOnly", func(t *testing.T) {
		for i, k := range []string{"c/3", "c/1", "c/2", "c/4"} {
			if _, err := cli.Put(ctx, k, fmt.Sprint("v", 4-i)); err != nil {
				t.Fatal(err)
			}
		}
		cli.Put(ctx, "d/outside", "x")
		all, err := cli.Get(ctx, "c/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if got := keys(all.Kvs); got != "c/1 c/2 c/3 c/4" || all.Count != 4 || all.More {
			t.Fatalf("prefix: got %q count %d more %v, want c/1..c/4, 4, false", got, all.Count, all.More)
		}
		lim, _ := cli.Get(ctx, "c/", clientv3.WithPrefix(), clientv3.WithLimit(2))
		if got := keys(lim.Kvs); got != "c/1 c/2" || lim.Count != 4 || !lim.More {
			t.Fatalf("limit 2: got %q count %d more %v, want c/1 c/2, 4, true", got, lim.Count, lim.More)
		}
		desc, _ := cli.Get(ctx, "c/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
		if got := keys(desc.Kvs); got != "c/4 c/3 c/2 c/1" {
			t.Fatalf("sort descending: got %q", got)
		}
		byMod, _ := cli.Get(ctx, "c/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend))
		if got := keys(byMod.Kvs); got != "c/3 c/1 c/2 c/4" {
			t.Fatalf("sort by mod revision: got %q, want the put order", got)
		}
		byVal, _ := cli.Get(ctx, "c/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend), clientv3.WithLimit(1))
		if got := keys(byVal.Kvs); got != "c/4" {
			t.Fatalf("sort by value, limit 1: got %q, want c/4 (value v1)", got)
		}
		cnt, _ := cli.Get(ctx, "c/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if len(cnt.Kvs) != 0 || cnt.Count != 4 {
			t.Fatalf("count only: got %d kvs, count %d; want 0, 4", len(cnt.Kvs), cnt.Count)
		}
		ko, _ := cli.Get(ctx, "c/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if len(ko.Kvs) != 4 || len(ko.Kvs[0].Value) != 0 {
			t.Fatalf("keys only: got %v, want 4 keys without values", ko.Kvs)
		}
		fromKey, _ := cli.Get(ctx, "c/3", clientv3.WithFromKey(), clientv3.WithLimit(3))
		if got := keys(fromKey.Kvs); got != "c/3 c/4 d/outside" {
			t.Fatalf("from key: got %q", got)
		}
		rng, _ := cli.Get(ctx, "c/2", clientv3.WithRange("c/4"))
		if got := keys(rng.Kvs); got != "c/2 c/3" {
			t.Fatalf("range [c/2, c/4): got %q", got)
		}
	})

	t.Run("PrevKvAndDeleteRange", func(t *testing.T) {
		cli.Put(ctx, "e/1", "old")
		p, err := cli.Put(ctx, "e/1", "new", clientv3.WithPrevKV())
		if err != nil || p.PrevKv == nil || string(p.PrevKv.Value) != "old" {
			t.Fatalf("put with prev kv: got %v, %v; want prev value old", p, err)
		}
		p, _ = cli.Put(ctx, "e/2", "x", clientv3.WithPrevKV())
		if p.PrevKv != nil {
			t.Fatalf("put of a new key: got prev kv %v, want none", p.PrevKv)
		}
		cli.Put(ctx, "e/3", "y")
		d, err := cli.Delete(ctx, "e/", clientv3.WithPrefix(), clientv3.WithPrevKV())
		if err != nil || d.Deleted != 3 || len(d.PrevKvs) != 3 || string(d.PrevKvs[0].Value) != "new" {
			t.Fatalf("delete prefix: got %+v, %v; want 3 deleted with prev kvs", d, err)
		}
		d, _ = cli.Delete(ctx, "e/1")
		if d.Deleted != 0 {
			t.Fatalf("deleting a deleted key: got %d deleted, want 0", d.Deleted)
		}
		get, _ := cli.Get(ctx, "e/", clientv3.WithPrefix())
		if get.Count != 0 {
			t.Fatalf("after delete: %d keys left", get.Count)
		}
	})

	t.Run("TxnComparesAndBranches", func(t *testing.T) {
		put, _ := cli.Put(ctx, "f/k", "v")
		rev := put.Header.Revision
		for _, tc := range []struct {
			name string
			cmp  clientv3.Cmp
			want bool
		}{
			{"value equal", clientv3.Compare(clientv3.Value("f/k"), "=", "v"), true},
			{"value not equal", clientv3.Compare(clientv3.Value("f/k"), "!=", "v"), false},
			{"value greater", clientv3.Compare(clientv3.Value("f/k"), ">", "a"), true},
			{"version", clientv3.Compare(clientv3.Version("f/k"), "=", 1), true},
			{"mod revision", clientv3.Compare(clientv3.ModRevision("f/k"), "=", rev), true},
			{"create revision less", clientv3.Compare(clientv3.CreateRevision("f/k"), "<", rev), false},
			{"absent key create revision", clientv3.Compare(clientv3.CreateRevision("f/absent"), "=", 0), true},
			{"absent key value", clientv3.Compare(clientv3.Value("f/absent"), "=", ""), false},
		} {
			resp, err := cli.Txn(ctx).If(tc.cmp).Then(clientv3.OpGet("f/k")).Else(clientv3.OpGet("f/absent")).Commit()
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if resp.Succeeded != tc.want {
				t.Errorf("%s: succeeded %v, want %v", tc.name, resp.Succeeded, tc.want)
			}
		}
		// Compare-and-set: only the first of two identical txns wins.
		cas := func() bool {
			resp, err := cli.Txn(ctx).
				If(clientv3.Compare(clientv3.Value("f/k"), "=", "v")).
				Then(clientv3.OpPut("f/k", "w"), clientv3.OpPut("f/other", "o")).
				Else(clientv3.OpGet("f/k")).Commit()
			if err != nil {
				t.Fatal(err)
			}
			return resp.Succeeded
		}
		if !cas() || cas() {
			t.Fatal("compare-and-set: want the first to succeed and the second to fail")
		}
		resp, _ := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("f/k"), "=", "v")).Else(clientv3.OpGet("f/k")).Commit()
		if rr := resp.Responses[0].GetResponseRange(); rr == nil || string(rr.Kvs[0].Value) != "w" {
			t.Fatalf("else branch: got %v, want a range with f/k=w", resp.Responses)
		}
		// A txn's writes share one revision.
		resp, _ = cli.Txn(ctx).Then(clientv3.OpPut("f/a", "1"), clientv3.OpPut("f/b", "2"), clientv3.OpDelete("f/other")).Commit()
		ga, _ := cli.Get(ctx, "f/a")
		gb, _ := cli.Get(ctx, "f/b")
		if ga.Kvs[0].ModRevision != resp.Header.Revision || gb.Kvs[0].ModRevision != resp.Header.Revision {
			t.Fatalf("txn writes at revisions %d and %d, want both %d", ga.Kvs[0].ModRevision, gb.Kvs[0].ModRevision, resp.Header.Revision)
		}
		// Nested txn.
		resp, err := cli.Txn(ctx).Then(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value("f/a"), "=", "1")},
			[]clientv3.Op{clientv3.OpPut("f/nested", "yes")}, nil)).Commit()
		if err != nil || !resp.Responses[0].GetResponseTxn().Succeeded {
			t.Fatalf("nested txn: got %v, %v", resp, err)
		}
	})

	t.Run("Compaction", func(t *testing.T) {
		p1, _ := cli.Put(ctx, "g/k", "1")
		p2, _ := cli.Put(ctx, "g/k", "2")
		cli.Put(ctx, "g/k", "3")
		if _, err := cli.Compact(ctx, p2.Header.Revision); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Get(ctx, "g/k", clientv3.WithRev(p1.Header.Revision)); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("get below the compaction: got %v, want %v", err, rpctypes.ErrCompacted)
		}
		at, err := cli.Get(ctx, "g/k", clientv3.WithRev(p2.Header.Revision))
		if err != nil || string(at.Kvs[0].Value) != "2" {
			t.Fatalf("get at the compaction revision: got %v, %v; want 2", at, err)
		}
		if _, err := cli.Compact(ctx, p1.Header.Revision); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("compacting below the last compaction: got %v, want %v", err, rpctypes.ErrCompacted)
		}
		if _, err := cli.Compact(ctx, 1<<40); !errors.Is(err, rpctypes.ErrFutureRev) {
			t.Fatalf("compacting a future revision: got %v, want %v", err, rpctypes.ErrFutureRev)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			do   func() error
			want error
		}{
			{"future revision", func() error { _, err := cli.Get(ctx, "h", clientv3.WithRev(1<<40)); return err }, rpctypes.ErrFutureRev},
			{"empty key put", func() error { _, err := cli.Put(ctx, "", "v"); return err }, rpctypes.ErrEmptyKey},
			{"empty key get", func() error { _, err := cli.Get(ctx, ""); return err }, rpctypes.ErrEmptyKey},
			{"empty key delete", func() error { _, err := cli.Delete(ctx, ""); return err }, rpctypes.ErrEmptyKey},
			{"ignore value of a missing key", func() error { _, err := cli.Put(ctx, "h/missing", "", clientv3.WithIgnoreValue()); return err }, rpctypes.ErrKeyNotFound},
			{"ignore value with a value", func() error { _, err := cli.Put(ctx, "h/k", "v", clientv3.WithIgnoreValue()); return err }, rpctypes.ErrValueProvided},
			{"missing lease", func() error { _, err := cli.Put(ctx, "h/k", "v", clientv3.WithLease(12345)); return err }, rpctypes.ErrLeaseNotFound},
			{"too many txn ops", func() error {
				ops := make([]clientv3.Op, 129)
				for i := range ops {
					ops[i] = clientv3.OpPut(fmt.Sprint("h/", i), "v")
				}
				_, err := cli.Txn(ctx).Then(ops...).Commit()
				return err
			}, rpctypes.ErrTooManyOps},
			{"duplicate key in txn", func() error {
				_, err := cli.Txn(ctx).Then(clientv3.OpPut("h/d", "1"), clientv3.OpPut("h/d", "2")).Commit()
				return err
			}, rpctypes.ErrDuplicateKey},
			{"request too large", func() error {
				_, err := cli.Put(ctx, "h/big", strings.Repeat("x", DefaultMaxRequestBytes+1))
				return err
			}, rpctypes.ErrRequestTooLarge},
		} {
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			}
		}
		_, err := cli.Put(ctx, strings.Repeat("k", DefaultMaxKeyBytes+1), "v")
		if err == nil || !strings.Contains(err.Error(), "key is too large") {
			t.Errorf("key too large: got %v, want an error saying the key is too large", err)
		}
		// 128 ops is etcd's limit, not over it.
		ops := make([]clientv3.Op, 128)
		for i := range ops {
			ops[i] = clientv3.OpPut(fmt.Sprint("h/ok/", i), "v")
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Errorf("txn of 128 ops: %v", err)
		}
	})
}

func keys(kvs []*mvccpb.KeyValue) string {
	var ks []string
	for _, kv := range kvs {
		ks = append(ks, string(kv.Key))
	}
	return strings.Join(ks, " ")
}

// TestFollowersServeEveryRequest sends writes and linearizable reads to
// followers only: a write through one follower is visible at once through
// the other.
func TestFollowersServeEveryRequest(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.waitLeader()
	var fs []int
	for i := range c.members {
		if i != lead {
			fs = append(fs, i)
		}
	}
	w, r := c.client(fs[0]), c.client(fs[1])
	ctx := testCtx(t)
	for i := 0; i < 20; i++ {
		k, v := fmt.Sprint("k", i), fmt.Sprint("v", i)
		put, err := w.Put(ctx, k, v)
		if err != nil {
			t.Fatalf("put via follower: %v", err)
		}
		if put.Header.MemberId != uint64(c.members[fs[0]].ID) {
			t.Fatalf("header member %x, want the follower %x", put.Header.MemberId, uint64(c.members[fs[0]].ID))
		}
		get, err := r.Get(ctx, k)
		if err != nil {
			t.Fatalf("linearizable get via follower: %v", err)
		}
		if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != v {
			t.Fatalf("linearizable get of %s via the other follower: got %v, want %s", k, get.Kvs, v)
		}
		tx, err := r.Txn(ctx).If(clientv3.Compare(clientv3.Value(k), "=", v)).Then(clientv3.OpDelete(k)).Commit()
		if err != nil || !tx.Succeeded {
			t.Fatalf("txn via follower: got %v, %v", tx, err)
		}
	}
	// A serializable read on a follower catches up without a round trip.
	w.Put(ctx, "s", "1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		get, err := r.Get(ctx, "s", clientv3.WithSerializable())
		if err == nil && len(get.Kvs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serializable get on a follower never saw the write: %v, %v", get, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
