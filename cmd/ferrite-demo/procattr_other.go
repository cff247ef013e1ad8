//go:build !linux

package main

import "syscall"

// childAttr: only Linux has a parent-death signal; elsewhere the children
// share the demo's process group and see its Ctrl-C too.
func childAttr() *syscall.SysProcAttr { return nil }
