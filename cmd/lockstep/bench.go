package main

import (
	"flag"
	"io"
)

func benchFlags(fs *flag.FlagSet) func([]string, io.Writer) error {
	return func(args []string, w io.Writer) error { return usageErr("not yet") }
}
