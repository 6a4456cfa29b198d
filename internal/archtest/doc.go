// Package archtest holds no code: its test turns the layering rules of
// DESIGN.md into failures. See arch_test.go.
package archtest
