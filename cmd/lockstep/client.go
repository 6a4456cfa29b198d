package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// clientOptions are the flags every client command shares.
type clientOptions struct {
	endpoints         string
	timeout           time.Duration
	cacert, cert, key string
}

func (o *clientOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.endpoints, "endpoints", "127.0.0.1:2379", "comma-separated host:port (or http://host:port) of cluster members")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long the command may take")
	fs.StringVar(&o.cacert, "cacert", "", "CA bundle to verify members serving https (default: the system's roots)")
	fs.StringVar(&o.cert, "cert", "", "client certificate, for members that require one (with --key)")
	fs.StringVar(&o.key, "key", "", "the client certificate's key")
}

func (o *clientOptions) endpointList() []string {
	var eps []string
	for _, e := range strings.Split(o.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return eps
}

// connect returns a client and a context bounded by --timeout.
func (o *clientOptions) connect() (*clientv3.Client, context.Context, context.CancelFunc, error) {
	eps := o.endpointList()
	if len(eps) == 0 {
		return nil, nil, nil, usageErr("--endpoints: no endpoint")
	}
	tc, err := o.clientTLS()
	if err != nil {
		return nil, nil, nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: o.timeout,
		TLS:         tc,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connecting to %s: %w", o.endpoints, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	return cli, ctx, func() { cancel(); cli.Close() }, nil
}

// keyRange holds --prefix and --from-key, which get and del share: what a
// KEY argument stands for.
type keyRange struct{ prefix, fromKey *bool }

func registerKeyRange(fs *flag.FlagSet, verb string) keyRange {
	return keyRange{
		prefix:  fs.Bool("prefix", false, verb+" every key with KEY as prefix"),
		fromKey: fs.Bool("from-key", false, verb+" every key >= KEY"),
	}
}

// options checks the flags and returns the client options they stand for.
func (r keyRange) options() ([]clientv3.OpOption, error) {
	if *r.prefix && *r.fromKey {
		return nil, usageErr("--prefix and --from-key exclude each other")
	}
	var opts []clientv3.OpOption
	if *r.prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	if *r.fromKey {
		opts = append(opts, clientv3.WithFromKey())
	}
	return opts, nil
}

func printKVs(w io.Writer, kvs []*mvccpb.KeyValue, keysOnly bool) {
	for _, kv := range kvs {
		fmt.Fprintf(w, "%s\n", kv.Key)
		if !keysOnly {
			fmt.Fprintf(w, "%s\n", kv.Value)
		}
	}
}

func putFlags(fs *flag.FlagSet) func([]string, io.Writer) error {
	var o clientOptions
	o.register(fs)
	prevKV := fs.Bool("prev-kv", false, "print the key's previous value")
	return func(args []string, w io.Writer) error {
		if len(args) != 2 {
			return usageErr("want KEY VALUE, got %d arguments", len(args))
		}
		cli, ctx, done, err := o.connect()
		if err != nil {
			return err
		}
		defer done()
		var opts []clientv3.OpOption
		if *prevKV {
			opts = append(opts, clientv3.WithPrevKV())
		}
		resp, err := cli.Put(ctx, args[0], args[1], opts...)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, "OK")
		if resp.PrevKv != nil {
			printKVs(w, []*mvccpb.KeyValue{resp.PrevKv}, false)
		}
		return nil
	}
}

func getFlags(fs *flag.FlagSet) func([]string, io.Writer) error {
	var o clientOptions
	o.register(fs)
	keys := registerKeyRange(fs, "read")
	limit := fs.Int64("limit", 0, "most keys to return (0: no limit)")
	rev := fs.Int64("rev", 0, "revision to read at (0: the current one)")
	serializable := fs.Bool("serializable", false, "read the contacted member's state without a round to the leader (may be stale)")
	keysOnly := fs.Bool("keys-only", false, "print keys only")
	countOnly := fs.Bool("count-only", false, "print the number of keys only")
	return func(args []string, w io.Writer) error {
		if len(args) != 1 {
			return usageErr("want KEY, got %d arguments", len(args))
		}
		opts, err := keys.options()
		if err != nil {
			return err
		}
		cli, ctx, done, err := o.connect()
		if err != nil {
			return err
		}
		defer done()
		opts = append(opts, clientv3.WithLimit(*limit), clientv3.WithRev(*rev))
		if *serializable {
			opts = append(opts, clientv3.WithSerializable())
		}
		if *keysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		if *countOnly {
			opts = append(opts, clientv3.WithCountOnly())
		}
		resp, err := cli.Get(ctx, args[0], opts...)
		if err != nil {
			return err
		}
		if *countOnly {
			fmt.Fprintln(w, resp.Count)
			return nil
		}
		printKVs(w, resp.Kvs, *keysOnly)
		return nil
	}
}

func delFlags(fs *flag.FlagSet) func([]string, io.Writer) error {
	var o clientOptions
	o.register(fs)
	keys := registerKeyRange(fs, "delete")
	return func(args []string, w io.Writer) error {
		if len(args) != 1 {
			return usageErr("want KEY, got %d arguments", len(args))
		}
		opts, err := keys.options()
		if err != nil {
			return err
		}
		cli, ctx, done, err := o.connect()
		if err != nil {
			return err
		}
		defer done()
		resp, err := cli.Delete(ctx, args[0], opts...)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, resp.Deleted)
		return nil
	}
}

func txnFlags(fs *flag.FlagSet) func([]string, io.Writer) error {
	var o clientOptions
	o.register(fs)
	var ifValue, ifVersion, ifMissing, ifExists listFlag
	var thenPut, thenDel, thenGet, elsePut, elseDel, elseGet listFlag
	fs.Var(&ifValue, "if-value", "KEY=VALUE: the key's value is VALUE (repeatable)")
	fs.Var(&ifVersion, "if-version", "KEY=N: the key's version is N, 0 for absent (repeatable)")
	fs.Var(&ifMissing, "if-missing", "KEY: the key does not exist (repeatable)")
	fs.Var(&ifExists, "if-exists", "KEY: the key exists (repeatable)")
	fs.Var(&thenPut, "then-put", "KEY=VALUE to put if the conditions hold (repeatable)")
	fs.Var(&thenDel, "then-del", "KEY to delete if the conditions hold (repeatable)")
	fs.Var(&thenGet, "then-get", "KEY to read if the conditions hold (repeatable)")
	fs.Var(&elsePut, "else-put", "KEY=VALUE to put otherwise (repeatable)")
	fs.Var(&elseDel, "else-del", "KEY to delete otherwise (repeatable)")
	fs.Var(&elseGet, "else-get", "KEY to read otherwise (repeatable)")
	return func(args []string, w io.Writer) error {
		if len(args) != 0 {
			return usageErr("unexpected arguments %q (conditions and ops are flags)", args)
		}
		var cmps []clientv3.Cmp
		for _, kv := range ifValue {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return usageErr("--if-value %q is not KEY=VALUE", kv)
			}
			cmps = append(cmps, clientv3.Compare(clientv3.Value(k), "=", v))
		}
		for _, kv := range ifVersion {
			k, v, ok := strings.Cut(kv, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil {
				return usageErr("--if-version %q is not KEY=N", kv)
			}
			cmps = append(cmps, clientv3.Compare(clientv3.Version(k), "=", n))
		}
		for _, k := range ifMissing {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		}
		for _, k := range ifExists {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), ">", 0))
		}
		ops := func(name string, puts, dels, gets listFlag) ([]clientv3.Op, error) {
			var out []clientv3.Op
			for _, kv := range puts {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, usageErr("--%s-put %q is not KEY=VALUE", name, kv)
				}
				out = append(out, clientv3.OpPut(k, v))
			}
			for _, k := range dels {
				out = append(out, clientv3.OpDelete(k))
			}
			for _, k := range gets {
				out = append(out, clientv3.OpGet(k))
			}
			return out, nil
		}
		thenOps, err := ops("then", thenPut, thenDel, thenGet)
		if err != nil {
			return err
		}
		elseOps, err := ops("else", elsePut, elseDel, elseGet)
		if err != nil {
			return err
		}
		cli, ctx, done, err := o.connect()
		if err != nil {
			return err
		}
		defer done()
		resp, err := cli.Txn(ctx).If(cmps...).Then(thenOps...).Else(elseOps...).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			fmt.Fprintln(w, "SUCCESS")
		} else {
			fmt.Fprintln(w, "FAILURE")
		}
		for _, r := range resp.Responses {
			switch {
			case r.GetResponsePut() != nil:
				fmt.Fprintln(w, "OK")
			case r.GetResponseDeleteRange() != nil:
				fmt.Fprintln(w, r.GetResponseDeleteRange().Deleted)
			case r.GetResponseRange() != nil:
				printKVs(w, r.GetResponseRange().Kvs, false)
			}
		}
		return nil
	}
}

func statusFlags(fs *flag.FlagSet) func([]string, io.Writer) error {
	var o clientOptions
	o.register(fs)
	return func(args []string, w io.Writer) error {
		if len(args) != 0 {
			return usageErr("unexpected arguments %q", args)
		}
		cli, ctx, done, err := o.connect()
		if err != nil {
			return err
		}
		defer done()
		ml, err := cli.MemberList(ctx)
		if err != nil {
			return err
		}
		names := map[uint64]string{}
		for _, m := range ml.Members {
			names[m.ID] = m.Name
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENDPOINT\tMEMBER\tNAME\tLEADER\tREVISION\tRAFT TERM\tRAFT INDEX\tAPPLIED\tDISK BYTES\tERRORS")
		var failed []string
		for _, ep := range o.endpointList() {
			st, err := cli.Status(ctx, ep)
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", ep, err))
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t%v\n", ep, err)
				continue
			}
			lead := names[st.Leader]
			if st.Leader == st.Header.MemberId {
				lead += " (this)"
			}
			fmt.Fprintf(tw, "%s\t%x\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", ep, st.Header.MemberId, names[st.Header.MemberId], lead,
				st.Header.Revision, st.RaftTerm, st.RaftIndex, st.RaftAppliedIndex, st.DbSize, strings.Join(st.Errors, "; "))
		}
		tw.Flush()
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tNAME\tPEER URLS\tCLIENT URLS")
		for _, m := range ml.Members {
			fmt.Fprintf(tw, "%x\t%s\t%s\t%s\n", m.ID, m.Name, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","))
		}
		tw.Flush()
		if len(failed) > 0 {
			return fmt.Errorf("%d endpoint(s) did not answer: %s", len(failed), strings.Join(failed, "; "))
		}
		return nil
	}
}
