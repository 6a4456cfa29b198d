// Package e2e holds lockstep's multi-process tests: they build the lockstep
// binary, start members as separate processes on 127.0.0.1, and drive them
// with the etcd Go client and the real etcdctl. They are skipped with -short.
package e2e
