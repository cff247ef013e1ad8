package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/system"
	"github.com/prometheus/client_golang/prometheus"
)

func TestParseCommand(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  bool
	}{
		{"PING", []string{"PING"}, false},
		{"  SET  k   v  ", []string{"SET", "k", "v"}, false},
		{"SET sensor:temp:001 23.5 EX 86400", []string{"SET", "sensor:temp:001", "23.5", "EX", "86400"}, false},
		{`SET k "hello world"`, []string{"SET", "k", "hello world"}, false},
		{`SET k "a\"b\\c\n\t\x41\x4a"`, []string{"SET", "k", "a\"b\\c\n\tAJ"}, false},
		{`SET k "\xZZ"`, []string{"SET", "k", "xZZ"}, false},
		{`SET k "\q"`, []string{"SET", "k", "q"}, false},
		{`SET k 'it\'s \n raw'`, []string{"SET", "k", `it's \n raw`}, false},
		{`LPUSH k '{"temp":23.5}'`, []string{"LPUSH", "k", `{"temp":23.5}`}, false},
		{`SET k ""`, []string{"SET", "k", ""}, false},
		{`a"b c"`, []string{"ab c"}, false},
		{`SET k v\n`, []string{"SET", "k", `v\n`}, false},
		{"SET\tk\r\nv", []string{"SET", "k", "v"}, false},
		{`SET k "unterminated`, nil, true},
		{`SET k 'unterminated`, nil, true},
		{`SET k "a"b`, nil, true},
		{`SET k 'a'b`, nil, true},
		{`SET k "a\`, nil, true},
		{"", nil, true},
		{"   ", nil, true},
		{"SET k \x00", nil, true},
		{`["HINCRBY","k","f",5]`, []string{"HINCRBY", "k", "f", "5"}, false},
		{` ["SET","k","a b\u0000c",-1.5e3]`, []string{"SET", "k", "a b\x00c", "-1.5e3"}, false},
		{`[]`, nil, true},
		{`["SET",null]`, nil, true},
		{`["SET",{"a":1}]`, nil, true},
		{`["SET",true]`, nil, true},
		{`["SET"`, nil, true},
	}
	for _, tc := range cases {
		got, err := ParseCommand([]byte(tc.in))
		if (err != nil) != tc.err {
			t.Errorf("%q: err = %v", tc.in, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("%q: %v does not wrap ErrSyntax", tc.in, err)
			}
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{`SET k "a\x41" 'b\'c'`, `["a",1]`, `"`, `'`, `a"b"`, "x\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		args, err := ParseCommand(b)
		if want, ok := jsonReference(b); ok && (err != nil || !reflect.DeepEqual(args, want)) {
			t.Fatalf("%q: got %q, %v; encoding/json says %q", b, args, err, want)
		}
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		if len(args) == 0 {
			t.Fatal("no error and no arguments")
		}
		// An accepted JSON array is valid JSON (checked for valid UTF-8 input:
		// strings without escapes keep their bytes as they are).
		if tr := bytes.TrimLeft(b, " \t\r\n\v\f"); len(tr) > 0 && tr[0] == '[' && utf8.Valid(tr) && !json.Valid(tr) {
			t.Fatalf("accepted invalid JSON %q as %q", tr, args)
		}
		// A JSON array of the arguments parses back to the same arguments
		// (JSON strings cannot carry invalid UTF-8: those lines are skipped).
		for _, a := range args {
			if !utf8.ValidString(a) {
				return
			}
		}
		j, _ := json.Marshal(args)
		again, err := ParseCommand(j)
		if err != nil || !reflect.DeepEqual(again, args) {
			t.Fatalf("JSON round trip of %q: %q, %v", args, again, err)
		}
	})
}

// jsonReference parses a JSON command with encoding/json, for inputs the
// dedicated scanner must agree on: a valid UTF-8 flat array of strings and
// numbers, without the whitespace JSON does not know.
func jsonReference(b []byte) ([]string, bool) {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 || t[0] != '[' || !utf8.Valid(t) || !json.Valid(t) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	var vs []any
	if dec.Decode(&vs) != nil || len(vs) == 0 {
		return nil, false
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		switch v := v.(type) {
		case string:
			out[i] = v
		case json.Number:
			out[i] = v.String()
		default:
			return nil, false
		}
	}
	return out, true
}

func newTestRouter(t testing.TB) *Router {
	m, err := newMetrics(prometheus.NewRegistry(), new(system.Info))
	if err != nil {
		t.Fatal(err)
	}
	return newRouter(RouterOptions{}, testLogger(t), m, func(string, []byte, byte, []byte) {})
}

func TestRouterExecute(t *testing.T) {
	r := newTestRouter(t)
	err := r.Register(Command{Name: "echo", MinArgs: 1, MaxArgs: 2, Func: func(_ context.Context, req *Request) (any, error) {
		return req.Args, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(Command{Name: "ECHO", Func: func(context.Context, *Request) (any, error) { return nil, nil }}); !errors.Is(err, ErrDuplicateCommand) {
		t.Fatalf("duplicate: %v", err)
	}
	ctx := context.Background()
	if res, err := r.Execute(ctx, &Request{Name: "ECHO", Args: []string{"a"}}); err != nil || !reflect.DeepEqual(res, []string{"a"}) {
		t.Fatalf("ECHO: %v %v", res, err)
	}
	if _, err := r.Execute(ctx, &Request{Name: "ECHO"}); !errors.Is(err, ErrWrongArity) {
		t.Fatalf("arity: %v", err)
	}
	if _, err := r.Execute(ctx, &Request{Name: "ECHO", Args: []string{"a", "b", "c"}}); !errors.Is(err, ErrWrongArity) {
		t.Fatalf("arity: %v", err)
	}
	if _, err := r.Execute(ctx, &Request{Name: "NOPE"}); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown: %v", err)
	}
	if res, _ := r.Execute(ctx, &Request{Name: "PING"}); res != "PONG" {
		t.Fatalf("PING: %v", res)
	}
	if res, _ := r.Execute(ctx, &Request{Name: "PING", Args: []string{"hi"}}); res != "hi" {
		t.Fatalf("PING hi: %v", res)
	}
	res, _ := r.Execute(ctx, &Request{Name: "COMMAND"})
	if cs := res.([]commandInfo); len(cs) != 4 || cs[1].Name != "ECHO" {
		t.Fatalf("COMMAND: %+v", cs)
	}
	// Help texts that are a usage line are shown as they are; others get
	// the name in front, once.
	if err := r.Register(Command{Name: "SETX", Help: "SETX key value", Func: func(context.Context, *Request) (any, error) { return nil, nil }}); err != nil {
		t.Fatal(err)
	}
	for cmd, want := range map[string]string{"setx": "SETX key value", "ping": "PING [message] — replies \"PONG\", or message"} {
		if res, err := r.Execute(ctx, &Request{Name: "HELP", Args: []string{cmd}}); err != nil || res != want {
			t.Errorf("HELP %s = %q, %v; want %q", cmd, res, err, want)
		}
	}
}

func TestParseCommandErrorNamesTheValue(t *testing.T) {
	_, err := ParseCommand([]byte(`["HINCRBY","k","f",{"x":1}]`))
	if err == nil || !strings.HasSuffix(err.Error(), "element 3: want a string or a number, got an object") {
		t.Fatalf("err = %v", err)
	}
}

// request publishes a command as an MQTT 5 client and returns the reply.
func request(t *testing.T, c *paho.Client, recv chan *paho.Publish, payload, corr string) map[string]any {
	t.Helper()
	_, err := c.Publish(context.Background(), &paho.Publish{
		Topic: CommandTopic, QoS: 1, Payload: []byte(payload),
		Properties: &paho.PublishProperties{ResponseTopic: "reply/me", CorrelationData: []byte(corr)},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := recvOne(t, recv, "reply to "+payload)
	if p.Topic != "reply/me" || p.Properties == nil || string(p.Properties.CorrelationData) != corr {
		t.Fatalf("reply on %s with %+v", p.Topic, p.Properties)
	}
	if p.Properties.ContentType != "application/json" {
		t.Fatalf("content type %q", p.Properties.ContentType)
	}
	var v any
	if err := json.Unmarshal(p.Payload, &v); err != nil {
		t.Fatalf("reply %q: %v", p.Payload, err)
	}
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{"value": v}
}

func TestRouterOverMQTT5(t *testing.T) {
	b := startBroker(t, Options{})
	slow := make(chan struct{})
	_ = b.Router().Register(Command{Name: "SLOW", Func: func(ctx context.Context, _ *Request) (any, error) {
		<-slow
		return "done", nil
	}})
	_ = b.Router().Register(Command{Name: "FAIL", Func: func(context.Context, *Request) (any, error) {
		return nil, fmt.Errorf("store: key too large")
	}})
	recv := make(chan *paho.Publish, 8)
	c, _ := v5Client(t, b.Addr(), "cli", recv)
	v5Subscribe(t, c, "reply/me", 1)

	if got := request(t, c, recv, "PING", "1"); got["value"] != "PONG" {
		t.Fatalf("PING: %v", got)
	}
	if got := request(t, c, recv, `["PING","a b"]`, "2"); got["value"] != "a b" {
		t.Fatalf("JSON PING: %v", got)
	}
	if got := request(t, c, recv, "NOPE x", "3"); got["error"] != "unknown command 'NOPE'" {
		t.Fatalf("unknown: %v", got)
	}
	if got := request(t, c, recv, "PING a b", "4"); got["error"] == nil {
		t.Fatalf("arity: %v", got)
	}
	if got := request(t, c, recv, `PING "a`, "5"); got["error"] != "syntax error: unbalanced double quotes" {
		t.Fatalf("quoting: %v", got)
	}
	if got := request(t, c, recv, "FAIL", "6"); got["error"] != "store: key too large" {
		t.Fatalf("command error: %v", got)
	}
	// A slow command does not block others.
	if _, err := c.Publish(context.Background(), &paho.Publish{Topic: CommandTopic, QoS: 1, Payload: []byte("SLOW"),
		Properties: &paho.PublishProperties{ResponseTopic: "reply/me", CorrelationData: []byte("slow")}}); err != nil {
		t.Fatal(err)
	}
	if got := request(t, c, recv, "PING", "7"); got["value"] != "PONG" {
		t.Fatalf("PING behind SLOW: %v", got)
	}
	close(slow)
	if p := recvOne(t, recv, "SLOW reply"); string(p.Properties.CorrelationData) != "slow" {
		t.Fatalf("slow reply %+v", p)
	}
	if got := counterValue(b.metrics.commands.WithLabelValues("PING", cmdOK)); got != 3 {
		t.Fatalf("commands{PING,ok} = %v", got)
	}
}

// A reply larger than the client's Maximum Packet Size was dropped by the
// broker without a word (found by the config and command audit): the
// client gets an error that fits instead.
func TestRouterReplyBeyondMaximumPacketSize(t *testing.T) {
	b := startBroker(t, Options{})
	recv := make(chan *paho.Publish, 8)
	c := newV5(tcpDial(t, b.Addr()), "small", recv)
	maxPacket := uint32(256)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "small", KeepAlive: 30, CleanStart: true,
		Properties: &paho.ConnectProperties{MaximumPacketSize: &maxPacket}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	v5Subscribe(t, c, "reply/me", 1)
	if got := request(t, c, recv, "PING "+strings.Repeat("x", 100), "1"); got["value"] != strings.Repeat("x", 100) {
		t.Fatalf("a reply that fits: %v", got)
	}
	got := request(t, c, recv, "PING "+strings.Repeat("x", 1000), "2")
	if e, _ := got["error"].(string); !strings.Contains(e, "maximum packet size 256") {
		t.Fatalf("a reply too large: %v", got)
	}
	if n := counterValue(b.metrics.commands.WithLabelValues(unknownCommandLabel, cmdTooLarge)); n != 1 {
		t.Fatalf("too_large = %v", n)
	}
}

// A 3.1.1 client whose id holds a wildcard cannot have its own reply
// topic: its command is refused and logged, not answered into the void.
func TestRouterWildcardClientID(t *testing.T) {
	b := startBroker(t, Options{})
	c := v3Client(t, "tcp://"+b.Addr(), "a+b")
	c.Publish(CommandTopic, 1, false, "PING").WaitTimeout(waitTimeout)
	eventually(t, "the refusal counted", func() bool {
		return counterValue(b.metrics.commands.WithLabelValues(unknownCommandLabel, cmdBadRequest)) == 1
	})
}

func TestRouterMQTT311Fallback(t *testing.T) {
	b := startBroker(t, Options{})
	c := v3Client(t, "tcp://"+b.Addr(), "dev-7")
	got := make(chan pahov3.Message, 1)
	tok := c.Subscribe(ReplyTopicPrefix+"dev-7", 1, func(_ pahov3.Client, m pahov3.Message) { got <- m })
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// Commands are not forwarded, even to a subscriber of the command topic.
	seen := make(chan pahov3.Message, 1)
	c.Subscribe(CommandTopic, 0, func(_ pahov3.Client, m pahov3.Message) { seen <- m }).WaitTimeout(waitTimeout)
	c.Publish(CommandTopic, 1, false, "PING hello").WaitTimeout(waitTimeout)
	m := recvOne(t, got, "3.1.1 reply")
	if string(m.Payload()) != `"hello"` {
		t.Fatalf("reply %q", m.Payload())
	}
	select {
	case m := <-seen:
		t.Fatalf("command forwarded: %q", m.Payload())
	default: // a forwarded copy would have been queued to us before the reply
	}
}

func BenchmarkParseCommandLine(b *testing.B) {
	line := []byte(`SET sensor:temp:001 "23.5" EX 86400`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCommand(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCommandJSON(b *testing.B) {
	line := []byte(`["HINCRBY","store:42:daily_revenue","2025-02-19",4999]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCommand(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRouterDispatch(b *testing.B) {
	r := newTestRouter(b)
	payload := []byte("PING hello")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		args, err := ParseCommand(payload)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Execute(ctx, &Request{Name: args[0], Args: args[1:]}); err != nil {
			b.Fatal(err)
		}
	}
}

// denyPrefix refuses publishing under one prefix.
type denyPrefix struct{ prefix string }

func (denyPrefix) Authenticate(ClientInfo, []byte) bool { return true }
func (d denyPrefix) Authorize(_ ClientInfo, topic string, write bool) bool {
	return !write || !strings.HasPrefix(topic, d.prefix)
}

// A client cannot make the broker publish where it may not publish itself.
func TestRouterChecksReplyTopicAuthorization(t *testing.T) {
	b := startBroker(t, Options{Auth: denyPrefix{"forbidden/"}})
	recv := make(chan *paho.Publish, 4)
	c, _ := v5Client(t, b.Addr(), "cli", recv)
	v5Subscribe(t, c, "#", 0)
	for _, rt := range []string{"forbidden/x", "ok/x"} {
		_, err := c.Publish(context.Background(), &paho.Publish{Topic: CommandTopic, QoS: 1, Payload: []byte("PING"),
			Properties: &paho.PublishProperties{ResponseTopic: rt, CorrelationData: []byte(rt)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := recvOne(t, recv, "reply"); p.Topic != "ok/x" {
		t.Fatalf("reply published on %s", p.Topic)
	}
}
