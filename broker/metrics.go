package broker

import (
	"errors"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/system"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the broker's Prometheus metrics. mochi's own counters
// (system.Info, updated atomically) are exported through func collectors.
type metrics struct {
	packetsRejected      *prometheus.CounterVec // reason
	panics               prometheus.Counter
	connRefused          prometheus.Counter
	connectRefused       *prometheus.CounterVec // reason
	subscriptionsRefused prometheus.Counter
	tlsFailures          *prometheus.CounterVec // listener
	rateLimited          *prometheus.CounterVec // action
	handlerMessages      *prometheus.CounterVec // handler, outcome
	packetIDRemaps       prometheus.Counter
	persist              *prometheus.CounterVec // kind, result

	commands        *prometheus.CounterVec   // command, outcome
	commandDuration *prometheus.HistogramVec // command
}

func newMetrics(reg prometheus.Registerer, info *system.Info) (*metrics, error) {
	m := &metrics{
		packetsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_broker_packets_rejected_total",
			Help: "MQTT packets refused by the packet guard (the connection is closed), by reason.",
		}, []string{"reason"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_broker_panics_recovered_total",
			Help: "Panics recovered on client connection goroutines (the connection is closed).",
		}),
		connRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_broker_connections_refused_total",
			Help: "Connections closed on accept because too many were open.",
		}),
		connectRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_broker_connects_refused_total",
			Help: "CONNECTs refused with a CONNACK, by reason (max_clients, not_authorized, client_id_in_use).",
		}, []string{"reason"}),
		subscriptionsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_broker_subscriptions_refused_total",
			Help: "Topic filters refused because the client held broker.limits.max_subscriptions.",
		}),
		tlsFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_broker_tls_handshake_failures_total",
			Help: "TLS handshakes that failed or timed out on the MQTT TLS listener (the connection is closed).",
		}, []string{"listener"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_broker_publish_rate_limited_total",
			Help: "Publishes over a client's rate limit, by action (dropped: QoS 0; refused: MQTT 5 QoS 1/2 with 0x96; disconnected: MQTT 3.1.1 QoS 1/2).",
		}, []string{"action"}),
		handlerMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_broker_handler_messages_total",
			Help: "Messages dispatched to registered handlers, by handler and outcome (delivered, dropped, rejected).",
		}, []string{"handler", "outcome"}),
		packetIDRemaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferrite_broker_packet_id_remaps_total",
			Help: "SUBSCRIBE/UNSUBSCRIBE packets whose id collided with one of the broker's in-flight publishes to that client and was remapped (a mochi workaround; see broker/packetid.go).",
		}),
		persist: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_broker_persist_total",
			Help: "Broker state written to or loaded from the data dir (broker.persistence), by kind (retained, session, subscription, message) and result (stored, deleted, failed, loaded, corrupt).",
		}, []string{"kind", "result"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_commands_total",
			Help: "Commands received on $ferrite/cmd, by command and outcome (ok, error, unknown, busy, bad_request, denied).",
		}, []string{"command", "outcome"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferrite_command_duration_seconds",
			Help:    "Time to execute a command, from dequeue to reply, by command.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"command"}),
	}
	for _, r := range []string{reasonPanic, reasonMalformed, reasonFraming, reasonTooLarge, reasonProtocol} {
		m.packetsRejected.WithLabelValues(r)
	}
	for _, r := range []string{"max_clients", "not_authorized", "client_id_in_use"} {
		m.connectRefused.WithLabelValues(r)
	}
	for _, k := range persistKinds {
		for _, r := range []string{persistStored, persistDeleted, persistFailed, persistLoaded, persistCorrupt} {
			m.persist.WithLabelValues(k, r)
		}
	}
	for _, a := range []string{rateDropped, rateRefused, rateDisconnected} {
		m.rateLimited.WithLabelValues(a)
	}
	load := func(p *int64) func() float64 {
		return func() float64 { return float64(atomic.LoadInt64(p)) }
	}
	// mochi's gauges can drift below zero: when a session is taken over,
	// ClearInflights on the old client decrements Info.Inflight for the
	// messages the new client inherited and still acknowledges later
	// (mochi v2.7.9 inheritClientSession). A count is never negative.
	gauge := func(name, help string, p *int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			return float64(max(0, atomic.LoadInt64(p)))
		})
	}
	counter := func(name, help string, p *int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, load(p))
	}
	cs := []prometheus.Collector{
		m.packetsRejected, m.panics, m.connRefused, m.connectRefused, m.subscriptionsRefused, m.tlsFailures, m.rateLimited,
		m.handlerMessages, m.packetIDRemaps, m.persist, m.commands, m.commandDuration,
		gauge("ferrite_broker_clients_connected", "MQTT clients currently connected.", &info.ClientsConnected),
		gauge("ferrite_broker_subscriptions", "Active subscriptions.", &info.Subscriptions),
		gauge("ferrite_broker_retained_messages", "Retained messages held.", &info.Retained),
		gauge("ferrite_broker_inflight_messages", "QoS 1/2 messages in flight.", &info.Inflight),
		counter("ferrite_broker_messages_received_total", "PUBLISH packets received from clients.", &info.MessagesReceived),
		counter("ferrite_broker_messages_sent_total", "PUBLISH packets sent to clients.", &info.MessagesSent),
		counter("ferrite_broker_messages_dropped_total", "Messages dropped because a client's outbound queue was full.", &info.MessagesDropped),
		counter("ferrite_broker_inflight_dropped_total", "QoS 1/2 messages not sent to a client because its inflight window (max_inflight) was full.", &info.InflightDropped),
		counter("ferrite_broker_bytes_received_total", "Bytes received from clients.", &info.BytesReceived),
		counter("ferrite_broker_bytes_sent_total", "Bytes sent to clients.", &info.BytesSent),
	}
	var errs []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}
