//go:build !linux

package main

import "runtime"

// yield lets other goroutines run (sched_yield, which also yields to other
// processes, is used on Linux).
func yield() { runtime.Gosched() }
