package main

import "syscall"

// childAttr puts a child in its own process group (Ctrl-C reaches the demo
// only) and has the kernel send it SIGTERM if the demo dies first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
