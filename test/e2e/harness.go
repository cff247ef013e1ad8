// Package e2e holds the helpers of Ferrite's black-box end-to-end tests:
// build the real ferrite binary once, start it on free ports with a
// generated config and a temporary data dir, wait until it is ready, stop it
// with a signal, and connect paho MQTT 3.1.1 and MQTT 5 clients to it.
//
// A test package using it calls e2e.Main from its TestMain so that the
// binary is built once and removed at the end.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/ferrite-edge/ferrite"
)

// Timeout bounds every wait of the helpers.
const Timeout = 20 * time.Second

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// Main runs the tests of a package and removes the built binary afterwards.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// ModuleRoot is the directory holding the module's go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("e2e: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Binary builds cmd/ferrite once per test process (with the race detector
// when the tests themselves run with it) and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "ferrite-e2e-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "ferrite")
		args := []string{"build", "-o", buildPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/ferrite")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Process is one running ferrite.
type Process struct {
	Cmd     *exec.Cmd
	DataDir string
	Config  string // path of the generated config file
	Info    ferrite.RunInfo
	env     []string
	stderr  *syncBuffer
	done    chan struct{}
	waitErr error
}

// DefaultConfig is the YAML Start uses when given none: every listener on
// 127.0.0.1 port 0.
const DefaultConfig = `
node_id: e2e-node
broker:
  listen: 127.0.0.1:0
  websocket: 127.0.0.1:0
http:
  listen: 127.0.0.1:0
`

// Start writes config (DefaultConfig if empty) to a temp dir, runs the
// binary with it (data_dir set to a fresh temp dir through FERRITE_DATA_DIR;
// env entries come after it, so they may override it), waits until it wrote
// its listeners.json, and kills it when the test ends if it is still running.
func Start(t testing.TB, config string, env ...string) *Process {
	t.Helper()
	dir := t.TempDir()
	if config == "" {
		config = DefaultConfig
	}
	path := filepath.Join(dir, "ferrite.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return launch(t, path, filepath.Join(dir, "data"), env, nil)
}

// Restart starts a new process with the same config file, data dir and
// environment as p (which must have exited: Stop it first, with SIGKILL for
// a crash), and args after --config.
func (p *Process) Restart(t testing.TB, args ...string) *Process {
	t.Helper()
	if p.Alive() {
		t.Fatal("e2e: Restart of a running process")
	}
	return launch(t, p.Config, p.DataDir, p.env, args)
}

// launch runs the binary with --config configPath and args.
func launch(t testing.TB, configPath, dataDir string, env, args []string) *Process {
	t.Helper()
	bin := Binary(t)
	p := &Process{DataDir: dataDir, Config: configPath, env: env, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.Cmd = exec.Command(bin, append([]string{"--config", p.Config}, args...)...)
	p.Cmd.Env = append(append(os.Environ(), "FERRITE_DATA_DIR="+p.DataDir), env...)
	p.Cmd.Stdout = p.stderr
	p.Cmd.Stderr = p.stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("ferrite output:\n%s", p.Output())
		}
	})
	deadline := time.Now().Add(Timeout)
	for {
		// The run file names its pid: a stale one (a killed process) is ignored.
		info, err := ferrite.ReadRunFile(p.DataDir)
		if err == nil && info.PID == p.Cmd.Process.Pid {
			p.Info = info
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("ferrite exited before ready (%v):\n%s", p.waitErr, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferrite not ready after %s:\n%s", Timeout, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Output is everything the process logged so far.
func (p *Process) Output() string { return p.stderr.String() }

// Alive reports whether the process is still running.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends sig and waits (up to within) for the exit; it returns the exit
// code and fails the test if the process did not exit in time.
func (p *Process) Stop(t testing.TB, sig syscall.Signal, within time.Duration) int {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("ferrite did not exit within %s of %v", within, sig)
	}
	return p.Cmd.ProcessState.ExitCode()
}

// MQTTAddr is the bound MQTT TCP address.
func (p *Process) MQTTAddr() string { return p.Info.MQTT }

// V3Client connects an MQTT 3.1.1 paho client to url (tcp://host:port or ws://host:port/mqtt).
func V3Client(t testing.TB, url, id string) pahov3.Client {
	t.Helper()
	o := pahov3.NewClientOptions().AddBroker(url).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(30 * time.Second)
	c := pahov3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(Timeout) || tok.Error() != nil {
		t.Fatalf("v3 connect %s to %s: %v", id, url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// V5Client connects an MQTT 5 paho.golang client; received publishes are
// sent to recv (if not nil).
func V5Client(t testing.TB, addr, id string, recv chan<- *paho.Publish) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{Conn: &lockedConn{Conn: conn}, ClientID: id}
	if recv != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				recv <- pr.Packet
				return true, nil
			},
		}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("v5 connect %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// V5Subscribe subscribes c to filter.
func V5Subscribe(t testing.TB, c *paho.Client, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}}); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
}

// Receive waits for one value on ch.
func Receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Timeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// RunCLI runs the binary with args and returns its exit code and output.
func RunCLI(t testing.TB, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// HasCommand reports whether name is on PATH.
func HasCommand(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// Port returns the port of a host:port address.
func Port(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Clone(s.b.String())
}
