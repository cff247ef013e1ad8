package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

type target struct {
	name, broker string
	pid          int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(realMain(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed command line.
type options struct {
	targets    []target
	base       runConfig // everything but the target
	jsonOut    string
	gentle     bool
	duration   time.Duration
	gentleAddr string
}

// parseFlags parses args; a non-negative code means exit with it.
func parseFlags(args []string, stderr io.Writer) (*options, int) {
	fs := flag.NewFlagSet("ferrite-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		targets, pids multiFlag
		broker        = fs.String("broker", "tcp://127.0.0.1:1883", "broker to measure (when no -target is given)")
		publishers    = fs.Int("publishers", 10, "publisher connections (one sensor each)")
		rate          = fs.Float64("rate", 0, "total offered messages/s across publishers, open loop (0: as fast as possible)")
		duration      = fs.Duration("duration", 10*time.Second, "publishing time per target")
		qos           = fs.Int("qos", 0, "publish QoS (0 or 1)")
		formatName    = fs.String("format", "number", "payload format: "+strings.Join(formatNames(), ", "))
		client        = fs.String("client", "raw", "publisher implementation: raw (built-in MQTT 3.1.1 writer) or paho")
		subscribe     = fs.Bool("subscribe", true, "subscribe to the run's topics and measure forwarded msgs/s, loss and latency")
		verify        = fs.Bool("verify", false, "ask a ferrite gateway (SENSOR.STATS) how many readings it ingested")
		inflight      = fs.Int("inflight", 100, "QoS 1 unacknowledged messages allowed per publisher")
		drain         = fs.Duration("drain", 3*time.Second, "how long to wait for stragglers (acks, deliveries) after publishing")
		jsonOut       = fs.String("json", "", "also write the results as JSON to this file (- for stdout)")
		gentle        = fs.Bool("gentle", false, "demo mode: a few simulated sensors in every format at 1 Hz until interrupted (or -duration)")
	)
	fs.Var(&targets, "target", "NAME=URL broker to measure; repeat to compare brokers side by side with the same load (e.g. -target ferrite=tcp://127.0.0.1:1883 -target mosquitto=tcp://127.0.0.1:1884)")
	fs.Var(&pids, "pid", "NAME=PID of a target's broker process, to report its CPU seconds and RSS (repeatable; the target of -broker is named \"broker\")")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	f, ok := formats[*formatName]
	if !ok {
		fmt.Fprintf(stderr, "ferrite-bench: unknown -format %q (want one of %s)\n", *formatName, strings.Join(formatNames(), ", "))
		return nil, 2
	}
	tgts, err := parseTargets(targets, pids, *broker)
	if err != nil {
		fmt.Fprintln(stderr, "ferrite-bench:", err)
		return nil, 2
	}
	if !*gentle && (*publishers < 1 || *qos < 0 || *qos > 1 || *rate < 0 || *duration <= 0 || *inflight < 1 || (*client != "raw" && *client != "paho")) {
		fmt.Fprintln(stderr, "ferrite-bench: need -publishers >= 1, -qos 0|1, -rate >= 0, -duration > 0, -inflight >= 1, -client raw|paho")
		return nil, 2
	}
	return &options{
		targets: tgts, jsonOut: *jsonOut, gentle: *gentle, duration: *duration, gentleAddr: tgts[0].broker,
		base: runConfig{
			publishers: *publishers, rate: *rate, duration: *duration, qos: byte(*qos), format: f, client: *client,
			subscribe: *subscribe, verify: *verify, inflight: *inflight, drain: *drain,
		},
	}, -1
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, code := parseFlags(args, stderr)
	if code >= 0 {
		return code
	}
	if o.gentle {
		return runGentle(ctx, o.gentleAddr, o.duration, stdout, stderr)
	}
	var results []*result
	for _, t := range o.targets {
		cfg := o.base
		cfg.target, cfg.broker, cfg.pid = t.name, t.broker, t.pid
		cfg.runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
		fmt.Fprintf(stderr, "ferrite-bench: %s (%s): %d publishers, %s, QoS %d, %s, rate %s…\n",
			t.name, t.broker, cfg.publishers, cfg.duration, cfg.qos, cfg.format.name, rateString(cfg.rate))
		res, err := run(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "ferrite-bench: %s: %v\n", t.name, err)
			return 1
		}
		results = append(results, res)
		if ctx.Err() != nil {
			break
		}
	}
	printTable(stdout, results)
	if o.jsonOut != "" {
		if err := writeJSON(o.jsonOut, stdout, results); err != nil {
			fmt.Fprintln(stderr, "ferrite-bench:", err)
			return 1
		}
	}
	return 0
}

const usage = `ferrite-bench: MQTT load generator for ferrite (or any MQTT broker).

Publishes sensor payloads from N connections at an offered rate (open loop)
for a duration, optionally subscribes to the same topics to measure the
forwarded rate, loss and latency, and prints a summary table (and JSON).
Several -target flags measure several brokers one after the other with the
same load, for side-by-side comparisons.

Examples:
  ferrite-bench -broker tcp://127.0.0.1:1883 -publishers 100 -rate 100000 -duration 60s
  ferrite-bench -qos 1 -publishers 100 -duration 30s -verify
  ferrite-bench -target ferrite=tcp://127.0.0.1:1883 -pid ferrite=$(pidof ferrite) \
                -target mosquitto=tcp://127.0.0.1:1884 -pid mosquitto=$(pidof mosquitto) \
                -publishers 100 -rate 100000 -duration 30s -json results.json
  ferrite-bench -gentle        # 1 Hz demo sensors in every format

Flags:
`

func parseTargets(targets, pids multiFlag, broker string) ([]target, error) {
	var out []target
	for _, t := range targets {
		name, url, ok := strings.Cut(t, "=")
		if !ok || name == "" || url == "" {
			return nil, fmt.Errorf("-target %q: want NAME=URL", t)
		}
		out = append(out, target{name: name, broker: url})
	}
	if len(out) == 0 {
		out = append(out, target{name: "broker", broker: broker})
	}
	for _, p := range pids {
		name, v, ok := strings.Cut(p, "=")
		pid, err := strconv.Atoi(v)
		if !ok || err != nil || pid <= 0 {
			return nil, fmt.Errorf("-pid %q: want NAME=PID", p)
		}
		found := false
		for i := range out {
			if out[i].name == name {
				out[i].pid, found = pid, true
			}
		}
		if !found {
			return nil, fmt.Errorf("-pid %q: no target named %q", p, name)
		}
	}
	return out, nil
}

func rateString(r float64) string {
	if r <= 0 {
		return "max"
	}
	return strconv.FormatFloat(r, 'f', -1, 64) + " msg/s"
}

func printTable(w io.Writer, results []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tsent\tsent/s\tacked\trecv/s\tloss %\tp50 ms\tp99 ms\tmax ms\tingested/s\tCPU s\tCPU s/100k\tRSS MB\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%.0f\t%.3f\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t%.3f\t%.0f\t\n",
			r.Target, r.Sent, r.SendRate, optU(r.Acked, r.QoS > 0), r.RecvRate, r.LossPct, r.LatP50, r.LatP99, r.LatMax,
			optF(r.IngestRate, r.Ingested > 0), r.BrokerCPU, r.CPUPer100k, r.BrokerRSSMB)
	}
	tw.Flush()
	if len(results) > 1 && results[1].RecvRate > 0 {
		base := results[0]
		for _, r := range results[1:] {
			line := fmt.Sprintf("%s/%s: recv/s ratio %.2f", base.Target, r.Target, base.RecvRate/r.RecvRate)
			if base.IngestRate > 0 && r.RecvRate > 0 {
				line += fmt.Sprintf(", %s ingested/s ÷ %s forwarded/s %.2f", base.Target, r.Target, base.IngestRate/r.RecvRate)
			}
			if base.CPUPer100k > 0 && r.CPUPer100k > 0 {
				line += fmt.Sprintf(", CPU s/100k ratio %.2f", base.CPUPer100k/r.CPUPer100k)
			}
			fmt.Fprintln(w, line)
		}
	}
}

func optU(v uint64, ok bool) string {
	if !ok {
		return "-"
	}
	return strconv.FormatUint(v, 10)
}

func optF(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func writeJSON(path string, stdout io.Writer, results []*result) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
