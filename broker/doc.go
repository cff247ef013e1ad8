// Package broker embeds the MQTT broker of a Ferrite node: mochi-mqtt v2
// (MQTT 3.1.1 and 5) behind listeners of our own, a dispatch of published
// messages to registered handlers, and the $ferrite/cmd command router.
//
// # Listeners and the packet guard
//
// TCP and WebSocket listeners implement mochi's listeners.Listener. Every
// accepted connection is counted against Limits.MaxClients (plus a small
// slack so refused clients still get a CONNACK), gets a deadline for its
// CONNECT, and is wrapped in the packet guard before mochi reads a byte.
//
// The guard exists because of two hazards measured in mochi v2.7.9:
// its packet decoders can index past their buffer (after a valid MQTT 5
// CONNECT, the SUBSCRIBE 82 05 00 01 00 00 00 panics, and mochi has no
// recover, so the process dies), and it allocates the length a packet
// declares before reading it. The guard frames each control packet itself
// (at most four length bytes, size checked against Limits.MaxPacketSize
// before any byte of the body is buffered; the buffer grows only as bytes
// arrive), then decodes it with mochi's own packets decoder and runs the
// packet's validator, under recover. Only complete packets that decoded
// cleanly reach mochi. A packet that fails ends only its own connection,
// after the packets before it have been processed, and is counted in
// ferrite_broker_packets_rejected_total{reason}. As a second line, the
// goroutine running each connection recovers panics
// (ferrite_broker_panics_recovered_total).
//
// # Handlers
//
// Packages that consume messages (ingest, the hub side of the syncer)
// register a Handler for a topic filter with Broker.Handle; the dispatch
// runs inside mochi's OnPublish hook, never as an MQTT subscriber (mochi
// drops even QoS 1/2 messages for a subscriber whose queue is full).
// QoS 0 messages go to the handler's bounded queue and are delivered in
// batches by its worker; QoS 1/2 messages are delivered synchronously, so
// the PUBACK/PUBREC leaves only after the handler returned nil. A handler
// refuses with *RejectError: MQTT 5 publishers get its reason code (mochi
// sends the wrong packet type for QoS 2 refusals and ignores them for
// 3.1.1, so the broker writes v5 refusals itself and, for 3.1.1, sends no
// acknowledgement: the client keeps the message and resends it after
// reconnecting).
//
// # Commands
//
// A PUBLISH to $ferrite/cmd is acknowledged, neither retained nor forwarded,
// and queued for the Router's worker pool. The payload is a redis-cli style
// command line or a JSON array (see ParseCommand). The reply is JSON (an
// error is {"error": "..."}) published to the request's MQTT 5 Response Topic
// with its Correlation Data, or to $ferrite/reply/<client-id> for MQTT 3.1.1
// clients and v5 requests without a Response Topic. Other packages add
// commands with Router.Register; PING, COMMAND and HELP are built in.
//
// # Limits
//
// mochi's defaults are "unlimited" in several places (packet size, clients,
// session expiry, topic aliases); Limits gives each an explicit default.
// mochi also never announces the maximum packet size or topic alias maximum
// to MQTT 5 clients; the broker adds both to the CONNACK.
//
// # Lifecycle
//
// New → Handle/Router().Register → Start → Close. Close stops accepting,
// disconnects clients, waits for their connections, stops the command
// workers and lets each handler worker deliver what it has queued, all
// bounded by the context given to Close.
package broker
