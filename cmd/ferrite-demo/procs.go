package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is one child process (a node or a sensor simulator).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // Wait's result, once done is closed
}

// start runs bin with args, its output appended to logPath.
func start(name, bin, logPath string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: Ctrl-C in the terminal reaches the demo only,
	// which stops the children in order (edges before the hub is checked).
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to within, then kills.
func (p *proc) stop(within time.Duration) error {
	if !p.alive() {
		return p.exitErr()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM (killed)", p.name, within)
	}
}

func (p *proc) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("%s: %w (log: %s)", p.name, p.err, p.log)
	}
	return nil
}

// listeners is the node's run/listeners.json (see ferrite.RunInfo).
type listeners struct {
	PID  int    `json:"pid"`
	MQTT string `json:"mqtt"`
	HTTP string `json:"http"`
}

// waitReady waits for the node's run file (written once it is ready).
func waitReady(ctx context.Context, p *proc, dataDir string) (listeners, error) {
	deadline := time.Now().Add(60 * time.Second) // a race-built binary starts slowly
	for {
		var l listeners
		b, err := os.ReadFile(filepath.Join(dataDir, "run", "listeners.json"))
		if err == nil && json.Unmarshal(b, &l) == nil && l.PID == p.cmd.Process.Pid && l.MQTT != "" {
			return l, nil
		}
		if !p.alive() {
			return l, fmt.Errorf("%s exited before it was ready: %v (log: %s)", p.name, p.err, p.log)
		}
		if time.Now().After(deadline) {
			return l, fmt.Errorf("%s not ready after 60s (log: %s)", p.name, p.log)
		}
		select {
		case <-ctx.Done():
			return l, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freePort reserves a port for the hub: the edges must know the hub's
// address before it runs (they start first, offline).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// build compiles pkg (./cmd/ferrite ...) of the checkout into dir.
func build(ctx context.Context, dir, pkg string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// moduleRoot finds the ferrite checkout around the working directory.
func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w (run from the ferrite checkout, or pass --ferrite and --bench)", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the ferrite checkout: run from it, or pass --ferrite and --bench")
	}
	data, err := os.ReadFile(mod)
	if err != nil || !strings.Contains(string(data), "module github.com/ferrite-edge/ferrite\n") {
		return "", fmt.Errorf("%s is not ferrite's go.mod: run from the checkout, or pass --ferrite and --bench", mod)
	}
	return filepath.Dir(mod), nil
}

// Node configurations. Everything on 127.0.0.1; 10 s buckets so that they
// close (and sync) within the demo; a short reconnection backoff so the
// edges find the hub quickly once it starts.
const hubConfig = `# ferrite-demo: the hub
node_id: hub
mode: hub
data_dir: %[1]s
broker: {listen: "127.0.0.1:%[2]d"}
http: {listen: "127.0.0.1:0"}
homeassistant: {enabled: false}
`

const edgeConfig = `# ferrite-demo: an edge gateway
node_id: %[1]s
data_dir: %[2]s
broker: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
edge:
  hub_url: mqtt://127.0.0.1:%[3]d
  sync_policy: immediate
  sync_interval: 1s
sync: {backoff_min: 200ms, backoff_max: 2s}
ingest: {bucket_widths: [10s], allowed_lateness: 2s}
homeassistant: {publish_interval: 2s}
`

// startNode writes name's config and starts it.
func (d *demo) startNode(ctx context.Context, name, config string) (*node, error) {
	dataDir := filepath.Join(d.dir, name)
	cfgPath := filepath.Join(d.dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	p, err := start(name, d.ferrite, filepath.Join(d.dir, name+".log"), "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	nd := &node{name: name, proc: p}
	d.nodes = append(d.nodes, nd)
	l, err := waitReady(ctx, p, dataDir)
	if err != nil {
		return nil, err
	}
	nd.addr = l.MQTT
	nd.cmd, err = dialCommander(ctx, "ferrite-demo-"+name, l.MQTT)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return nd, nil
}
