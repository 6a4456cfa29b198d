// Command lockstep runs a replicated key-value server that speaks etcd's v3
// API, a three-member demo cluster, and clients for both.
//
//	lockstep help
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `lockstep: a replicated key-value store that etcd clients use unchanged.

Usage:
  lockstep serve [flags]        run one member of a cluster (etcd's flag names)
  lockstep demo [flags]         run a 3-member cluster on loopback until Ctrl-C
  lockstep put KEY VALUE        write a key
  lockstep get KEY              read a key (--prefix, --from-key, --limit, --rev,
                                --serializable, --keys-only, --count-only)
  lockstep del KEY              delete a key (--prefix, --from-key)
  lockstep txn [conditions] [ops]
                                a transaction: every --if-* must hold for the
                                --then-* ops to run, else the --else-* ops run:
                                  --if-value KEY=VALUE    --if-version KEY=N
                                  --if-missing KEY        --if-exists KEY
                                  --then-put KEY=VALUE --then-del KEY --then-get KEY
                                  --else-put KEY=VALUE --else-del KEY --else-get KEY
                                e.g. lockstep txn --if-value k=v1 --then-put k=v2 --else-get k
  lockstep status               each endpoint's member, leader, revision and raft
                                index, and the member list
  lockstep bench put|get        load a running cluster, print ops/s and latencies
  lockstep help [command]       this text, or a command's flags

A member's ID is derived from its name, so that every member computes the
same IDs from the same --initial-cluster: the first 8 bytes, big-endian, of
SHA-256("lockstep member " + name). The cluster ID is derived the same way
from --initial-cluster-token (SHA-256("lockstep cluster " + token)).

Client commands take --endpoints (comma-separated host:port, default
127.0.0.1:2379) and --timeout. Every flag can also be set in the
environment as LOCKSTEP_<FLAG>, upper case with - as _ (LOCKSTEP_DATA_DIR,
LOCKSTEP_ENDPOINTS); a flag on the command line wins.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks an error in how the command was called: exit status 2.
var errUsage = errors.New("usage")

type command struct {
	flags func(*flag.FlagSet) func(args []string, stdout io.Writer) error
}

var commands = map[string]command{
	"serve":  {serveFlags},
	"demo":   {demoFlags},
	"put":    {putFlags},
	"get":    {getFlags},
	"del":    {delFlags},
	"txn":    {txnFlags},
	"status": {statusFlags},
	"bench":  {benchFlags},
}

// run is the whole program, with its exit status, so tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				fs := flag.NewFlagSet("lockstep "+args[1], flag.ContinueOnError)
				fs.SetOutput(stdout)
				c.flags(fs)
				fmt.Fprintf(stdout, "Flags of lockstep %s:\n", args[1])
				fs.PrintDefaults()
				return 0
			}
		}
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "lockstep: unknown command %q (see lockstep help)\n", args[0])
		return 2
	}
	fs := flag.NewFlagSet("lockstep "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	do := c.flags(fs)
	pos, err := parseFlags(fs, args[1:])
	if err == nil {
		err = do(pos, stdout)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "Flags of lockstep %s:\n", args[0])
		fs.PrintDefaults()
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "lockstep %s: %v\n", args[0], strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		fmt.Fprintf(stderr, "run 'lockstep help %s' for its flags\n", args[0])
		return 2
	default:
		fmt.Fprintf(stderr, "lockstep %s: %v\n", args[0], err)
		return 1
	}
}

// parseFlags parses flags anywhere among the arguments (etcdctl style:
// "put k v --prev-kv"), then fills every flag not given from its
// LOCKSTEP_* environment variable. It returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "LOCKSTEP_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%w: invalid value %q for %s (--%s): %v", errUsage, v, env, f.Name, e)
			}
		}
	})
	return pos, err
}

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
