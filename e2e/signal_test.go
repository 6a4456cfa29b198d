package e2e

import "syscall"

var (
	sigint  = syscall.SIGINT
	sigterm = syscall.SIGTERM
)
