// Command ferrite-demo runs a hub and two edge gateways as local processes
// (no Docker needed), feeds the edges simulated sensors, writes conflicting
// keys on both edges while the hub is down, then starts the hub and prints
// a live summary until the three replicas converge: the same value for
// every demo key (counters exact, sets merged, the register conflict
// resolved identically), every edge's sensor buckets at the hub, and the
// hub republishing them for cloud subscribers.
//
//	go run ./cmd/ferrite-demo                  # until Ctrl-C
//	go run ./cmd/ferrite-demo --duration 30s   # stop by itself
//
// Every process listens on 127.0.0.1 on free ports, with its data and log
// under a temporary directory (kept with --keep, or when the demo fails).
// The binaries are built from the checkout with `go build` unless
// --ferrite / --bench name them.
//
// On Ctrl-C or at the end of --duration, the demo stops writing, syncs
// both edges, checks convergence, prints the verdict and stops every
// process gracefully. Exit codes: 0 converged, 1 not converged or a
// process failed, 2 usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the demo (its children get SIGTERM)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line.
type options struct {
	duration time.Duration
	interval time.Duration
	settle   time.Duration
	ferrite  string
	bench    string
	keep     bool
	sensors  bool
}

func parseFlags(args []string, stderr io.Writer) (*options, int) {
	fs := flag.NewFlagSet("ferrite-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	fs.DurationVar(&o.interval, "interval", 2*time.Second, "time between two summaries")
	fs.DurationVar(&o.settle, "settle", 30*time.Second, "how long convergence may take once writes stop")
	fs.StringVar(&o.ferrite, "ferrite", "", "ferrite binary to run (default: go build ./cmd/ferrite)")
	fs.StringVar(&o.bench, "bench", "", "ferrite-bench binary for the simulated sensors (default: go build ./cmd/ferrite-bench)")
	fs.BoolVar(&o.keep, "keep", false, "keep the data and logs directory")
	fs.BoolVar(&o.sensors, "sensors", true, "run simulated sensors (ferrite-bench -gentle) against both edges")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ferrite-demo [flags]\n\nA hub and two edges on this machine, converging. Flags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	if fs.NArg() > 0 || o.duration < 0 || o.interval <= 0 || o.settle <= 0 {
		fmt.Fprintln(stderr, "ferrite-demo: want --duration >= 0, --interval > 0, --settle > 0 and no arguments")
		return nil, 2
	}
	return o, -1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, code := parseFlags(args, stderr)
	if code >= 0 {
		return code
	}
	d := &demo{opts: o, out: stdout}
	err := d.run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "ferrite-demo:", err)
	}
	if !d.shutdown() || err != nil {
		return 1
	}
	return 0
}
