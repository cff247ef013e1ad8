package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Command topics (see docs/DESIGN.md "broker").
const (
	// CommandTopic is where clients publish commands.
	CommandTopic = "$ferrite/cmd"
	// ReplyTopicPrefix + client id is where replies go for MQTT 3.1.1 clients
	// and for MQTT 5 requests without a Response Topic.
	ReplyTopicPrefix = "$ferrite/reply/"
)

// Command is one command the router executes.
type Command struct {
	// Name is matched case-insensitively ("EDGE.STATUS").
	Name string
	// MinArgs and MaxArgs bound the number of arguments after the name;
	// MaxArgs < 0 means no maximum.
	MinArgs, MaxArgs int
	// ReadOnly commands do not change state (for ACLs and for replicas).
	ReadOnly bool
	// Help is one line: the arguments, then what the command does.
	Help string
	// Func runs the command. Its result is sent as JSON; an error is sent as
	// {"error": err.Error()}. ctx carries the router's per-command timeout.
	Func func(ctx context.Context, req *Request) (any, error)
}

// Request is one command invocation.
type Request struct {
	Name     string   // upper-cased command name
	Args     []string // arguments after the name
	ClientID string
	Username string
}

// RouterOptions tune the command router.
type RouterOptions struct {
	// Workers execute commands concurrently (default 4).
	Workers int
	// QueueSize bounds the commands waiting for a worker (default 256);
	// beyond it requests get {"error": "... command queue full"} at once.
	QueueSize int
	// Timeout bounds one command's execution (default 10s).
	Timeout time.Duration
}

// Command outcomes, used as metric labels.
const (
	cmdOK         = "ok"
	cmdError      = "error"
	cmdUnknown    = "unknown"
	cmdBusy       = "busy"
	cmdBadRequest = "bad_request"
	cmdDenied     = "denied"
	cmdTooLarge   = "too_large" // the reply exceeded the client's maximum packet size
	// metric label for requests that name no registered command, so clients
	// cannot grow the label set.
	unknownCommandLabel = "_unknown"
)

// entry is a registered command with its metric handles (looked up once,
// not per call).
type entry struct {
	Command
	ok, failed, badRequest prometheus.Counter
	duration               prometheus.Observer
}

// job is one request waiting for a worker.
type job struct {
	payload     []byte
	client      ClientInfo
	replyTopic  string
	correlation []byte
	qos         byte
	maxPacket   uint32 // the client's MQTT 5 Maximum Packet Size (0: none)
}

// Router executes the commands published on CommandTopic on a bounded pool
// of workers, so a slow command never blocks a client's read loop, and
// publishes each reply as JSON.
type Router struct {
	opts    RouterOptions
	log     *slog.Logger
	metrics *metrics
	publish func(topic string, payload []byte, qos byte, correlation []byte)
	// mayReply reports whether a client may receive a reply on a topic: the
	// broker publishes replies itself, so the requester's own right to
	// publish there is checked (a Response Topic is chosen by the client).
	mayReply func(cl *mqtt.Client, topic string) bool
	// authorize, if set, decides whether a client may run a command (its
	// role); a non-nil error is the reply.
	authorize func(c ClientInfo, cmd *Command) error
	logBusy   rate.Sometimes

	mu   sync.RWMutex
	cmds map[string]*entry

	queue     chan *job
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{}
}

func newRouter(o RouterOptions, log *slog.Logger, m *metrics, publish func(string, []byte, byte, []byte)) *Router {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	r := &Router{
		opts:    o,
		log:     log,
		metrics: m,
		publish: publish,
		logBusy: rate.Sometimes{Interval: 10 * time.Second},
		cmds:    make(map[string]*entry),
		queue:   make(chan *job, o.QueueSize),
		stop:    make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.registerBuiltins()
	return r
}

// Register adds a command. Names are unique (case-insensitive).
func (r *Router) Register(c Command) error {
	name := strings.ToUpper(strings.TrimSpace(c.Name))
	switch {
	case name == "" || strings.ContainsAny(name, " \t\r\n\"'"):
		return fmt.Errorf("broker: register: invalid command name %q", c.Name)
	case c.Func == nil:
		return fmt.Errorf("broker: register %s: nil Func", name)
	case c.MinArgs < 0 || (c.MaxArgs >= 0 && c.MaxArgs < c.MinArgs):
		return fmt.Errorf("broker: register %s: bad arity [%d, %d]", name, c.MinArgs, c.MaxArgs)
	}
	c.Name = name
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cmds[name]; ok {
		return fmt.Errorf("%w: %s", ErrDuplicateCommand, name)
	}
	r.cmds[name] = &entry{
		Command:    c,
		ok:         r.metrics.commands.WithLabelValues(name, cmdOK), // exported as zero before the first call
		failed:     r.metrics.commands.WithLabelValues(name, cmdError),
		badRequest: r.metrics.commands.WithLabelValues(name, cmdBadRequest),
		duration:   r.metrics.commandDuration.WithLabelValues(name),
	}
	return nil
}

// Commands lists the registered commands sorted by name.
func (r *Router) Commands() []Command {
	r.mu.RLock()
	out := make([]Command, 0, len(r.cmds))
	for _, c := range r.cmds {
		out = append(out, c.Command)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Command) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (r *Router) lookup(name string) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cmds[name]
}

// Execute runs one request synchronously: lookup, arity check, Func under
// the router's timeout. Errors wrap ErrUnknownCommand or ErrWrongArity, or
// are the command's own.
func (r *Router) Execute(ctx context.Context, req *Request) (any, error) {
	req.Name = strings.ToUpper(req.Name)
	c := r.lookup(req.Name)
	if c == nil {
		r.metrics.commands.WithLabelValues(unknownCommandLabel, cmdUnknown).Inc()
		return nil, fmt.Errorf("%w '%s'", ErrUnknownCommand, truncate(req.Name, 64))
	}
	if len(req.Args) < c.MinArgs || (c.MaxArgs >= 0 && len(req.Args) > c.MaxArgs) {
		c.badRequest.Inc()
		return nil, fmt.Errorf("%w for '%s' (got %d, want %s)", ErrWrongArity, c.Name, len(req.Args), arity(&c.Command))
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	start := time.Now()
	res, err := c.Func(ctx, req)
	c.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		c.failed.Inc()
	} else {
		c.ok.Inc()
	}
	return res, err
}

func arity(c *Command) string {
	switch {
	case c.MaxArgs < 0:
		return fmt.Sprintf("at least %d", c.MinArgs)
	case c.MinArgs == c.MaxArgs:
		return fmt.Sprint(c.MinArgs)
	default:
		return fmt.Sprintf("%d to %d", c.MinArgs, c.MaxArgs)
	}
}

// start launches the workers (called by Broker.Start).
func (r *Router) start() {
	r.startOnce.Do(func() {
		for range r.opts.Workers {
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.work()
			}()
		}
	})
}

func (r *Router) work() {
	for {
		select {
		case j := <-r.queue:
			r.run(j)
		case <-r.stop:
			return
		}
	}
}

// close stops the workers; queued commands are dropped (their requesters
// are being disconnected). A running command's ctx is cancelled if ctx ends.
func (r *Router) close(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stop) })
	r.startOnce.Do(func() {}) // no workers may start after close
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		r.cancel()
		return nil
	case <-ctx.Done():
		r.cancel() // running commands see their ctx cancelled
		return fmt.Errorf("broker: waiting for commands: %w", ctx.Err())
	}
}

// submitFromClient queues a command published by cl. It never blocks.
func (r *Router) submitFromClient(cl *mqtt.Client, pk *packets.Packet) {
	j := &job{
		payload: pk.Payload,
		client:  clientInfo(cl),
		qos:     min(pk.FixedHeader.Qos, 1),
	}
	if cl.Properties.ProtocolVersion == 5 {
		j.maxPacket = cl.Properties.Props.MaximumPacketSize
	}
	if cl.Properties.ProtocolVersion == 5 && pk.Properties.ResponseTopic != "" {
		j.replyTopic = pk.Properties.ResponseTopic
		j.correlation = pk.Properties.CorrelationData
	} else {
		j.replyTopic = ReplyTopicPrefix + cl.ID
	}
	if r.mayReply != nil && !r.mayReply(cl, j.replyTopic) {
		r.metrics.commands.WithLabelValues(unknownCommandLabel, cmdBadRequest).Inc()
		r.logBusy.Do(func() {
			r.log.Warn("command refused: client may not publish to its reply topic", "client", cl.ID, "topic", j.replyTopic)
		})
		return
	}
	select {
	case <-r.stop:
		return
	default:
	}
	select {
	case r.queue <- j:
	default:
		r.metrics.commands.WithLabelValues(unknownCommandLabel, cmdBusy).Inc()
		r.logBusy.Do(func() { r.log.Warn("command queue full, request refused", "client", cl.ID) })
		r.reply(j, nil, ErrBusy)
	}
}

// run parses, executes and answers one job.
func (r *Router) run(j *job) {
	args, err := ParseCommand(j.payload)
	if err != nil {
		r.metrics.commands.WithLabelValues(unknownCommandLabel, cmdBadRequest).Inc()
		r.reply(j, nil, err)
		return
	}
	req := &Request{Name: strings.ToUpper(args[0]), Args: args[1:], ClientID: j.client.ID, Username: j.client.Username}
	if c := r.lookup(req.Name); c != nil && r.authorize != nil {
		if err := r.authorize(j.client, &c.Command); err != nil {
			r.metrics.commands.WithLabelValues(c.Name, cmdDenied).Inc()
			r.reply(j, nil, err)
			return
		}
	}
	res, err := r.Execute(r.ctx, req)
	r.reply(j, res, err)
}

// errorReply is the JSON body of a failed command.
type errorReply struct {
	Error string `json:"error"`
}

// replyError is the text sent for err: the broker's own sentinel errors
// without their package prefix, any other error as it is.
func replyError(err error) string {
	return strings.TrimPrefix(err.Error(), "broker: ")
}

func (r *Router) reply(j *job, res any, err error) {
	var body []byte
	if err == nil {
		body, err = json.Marshal(res)
		if err != nil {
			err = fmt.Errorf("reply not encodable as JSON: %w", err)
		}
	}
	if err != nil {
		body, _ = json.Marshal(errorReply{Error: replyError(err)})
	}
	if n := replyPacketSize(j, body); j.maxPacket > 0 && n > int(j.maxPacket) {
		// The broker would drop it for this client without a word: say so
		// in a reply that fits.
		r.metrics.commands.WithLabelValues(unknownCommandLabel, cmdTooLarge).Inc()
		body, _ = json.Marshal(errorReply{Error: fmt.Sprintf(
			"reply of %d bytes exceeds your maximum packet size %d: ask for less (SCAN with COUNT, a narrower pattern)", n, j.maxPacket)})
	}
	r.publish(j.replyTopic, body, j.qos, j.correlation)
}

// replyPacketSize bounds the size of the PUBLISH carrying body to j's
// client: fixed header, topic, packet id, properties (correlation data,
// content type) and payload.
func replyPacketSize(j *job, body []byte) int {
	const overhead = 5 + 2 + 2 + 4 + 3 + 32 + 32 // header, lengths, id, property lengths, content type, subscription ids
	return overhead + len(j.replyTopic) + len(j.correlation) + len(body)
}

// commandInfo is one entry of the COMMAND reply.
type commandInfo struct {
	Name     string `json:"name"`
	MinArgs  int    `json:"min_args"`
	MaxArgs  int    `json:"max_args"`
	ReadOnly bool   `json:"readonly"`
	Help     string `json:"help"`
}

func (r *Router) registerBuiltins() {
	must := func(err error) {
		if err != nil {
			panic(err) // programming error in the names below
		}
	}
	must(r.Register(Command{
		Name: "PING", MaxArgs: 1, ReadOnly: true,
		Help: "[message] — replies \"PONG\", or message",
		Func: func(_ context.Context, req *Request) (any, error) {
			if len(req.Args) == 1 {
				return req.Args[0], nil
			}
			return "PONG", nil
		},
	}))
	must(r.Register(Command{
		Name: "COMMAND", MaxArgs: 0, ReadOnly: true,
		Help: "— lists every command with its arity and help",
		Func: func(context.Context, *Request) (any, error) {
			cs := r.Commands()
			out := make([]commandInfo, len(cs))
			for i, c := range cs {
				out[i] = commandInfo{c.Name, c.MinArgs, c.MaxArgs, c.ReadOnly, c.Help}
			}
			return out, nil
		},
	}))
	must(r.Register(Command{
		Name: "HELP", MaxArgs: 1, ReadOnly: true,
		Help: "[command] — help for one command, or the list of command names",
		Func: func(_ context.Context, req *Request) (any, error) {
			if len(req.Args) == 0 {
				cs := r.Commands()
				names := make([]string, len(cs))
				for i, c := range cs {
					names[i] = c.Name
				}
				return names, nil
			}
			c := r.lookup(strings.ToUpper(req.Args[0]))
			if c == nil {
				return nil, fmt.Errorf("%w '%s'", ErrUnknownCommand, truncate(req.Args[0], 64))
			}
			// Most help texts are a usage line that starts with the name.
			if u := strings.ToUpper(c.Help); u == c.Name || strings.HasPrefix(u, c.Name+" ") {
				return c.Help, nil
			}
			return c.Name + " " + c.Help, nil
		},
	}))
}

// IsCommandError reports whether err is a request error of the router
// (unknown command, wrong arity, syntax, busy) rather than a command failure.
func IsCommandError(err error) bool {
	return errors.Is(err, ErrUnknownCommand) || errors.Is(err, ErrWrongArity) ||
		errors.Is(err, ErrSyntax) || errors.Is(err, ErrBusy)
}
