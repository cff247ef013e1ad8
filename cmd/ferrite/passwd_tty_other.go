//go:build !linux

package main

import "io"

// noEcho cannot turn echo off on this platform: the password shows as it is
// typed (prefer -b from a script, or a Linux gateway).
func noEcho(io.Reader) func() { return func() {} }
