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
// # Authentication and authorisation
//
// An Authenticator decides who connects and which topics each client may
// write, subscribe to and receive (mochi asks it for every publish, every
// subscription filter and every delivery). FileAuth is the node's:
// anonymous clients are accepted when AllowAnonymous is set, or from a
// loopback address when AnonymousFromLoopback is; users are verified
// against a mosquitto password file ($6$ salted SHA-512 and $7$
// PBKDF2-SHA512 hashes as mosquitto_passwd writes them; PasswordFile writes
// $7$ with 101 iterations and a 12-byte salt, as mosquitto does); an
// acl_file in mosquitto's format grants topics per user, to anonymous
// clients and by pattern (%u, %c). The semantics are mosquitto's (deny
// rules first, the first matching rule decides, nothing matching denies,
// no acl_file means every accepted client may use every topic), with three
// decisions of ours:
//   - without a password file, user names are not verified, so a client
//     sending one is anonymous for the ACL and the command roles;
//   - the command topic and the sync prefixes are only granted by rules
//     spelling them out ("topic write $ferrite/cmd"), never by "#" or
//     "$ferrite/#";
//   - a subscription is refused only when no read rule can match any topic
//     it covers; wider ones are accepted and each delivery is checked.
//
// A will is a publish the client makes when it goes away, so CONNECT is
// refused when the client may not write its will topic (mochi sends wills
// without asking). CommandAuthorizer adds per-command roles: RoleMonitor
// runs ReadOnly commands only. FileAuth.Reload re-reads both files (the old
// ones stay in force if a new one is bad); connected clients keep their
// session and their next publish, subscription or delivery follows the new
// rules; Broker.DisconnectRevoked then drops the clients whose user left
// the password file. InternalUser is the node's own client (the hub syncer
// on its embedded broker), with a per-process random password.
//
// # TLS
//
// Options.TLSListen (mqtts) and TLSWebSocket (wss) serve over TLS 1.2+ with
// a ServerTLS, reloadable for certificate rotation. The TLS handshake runs
// on the connection's goroutine under the connect timeout, then the packet
// guard reads the decrypted stream, exactly as on plain TCP. With a client
// CA, client certificates are verified (required with RequireClientCert);
// with IdentityAsUsername a verified certificate's common name becomes the
// user name and no password is needed.
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
// to MQTT 5 clients; the broker adds both to the CONNACK. Limits.
// MaxPublishRate adds a token bucket per connection: over it QoS 0 messages
// are dropped, MQTT 5 QoS 1/2 messages get reason code 0x96 "message rate
// too high" and MQTT 3.1.1 clients sending QoS 1/2 are disconnected (3.1.1
// has no way to refuse a publish; the client resends it after reconnecting).
// Each refusal is counted (ferrite_broker_publish_rate_limited_total,
// ferrite_broker_connects_refused_total, ferrite_broker_inflight_dropped_total,
// ferrite_broker_messages_dropped_total).
//
// # Session takeover
//
// A client connecting with the id of a connected client takes its session
// over, as in mosquitto. mochi v2.7.9 can lose the new client from its
// client map when the old session ends with its connection, so nothing is
// delivered to it; the hook ends such an old connection itself before
// mochi looks for the session (takeover.go).
//
// # Retained index
//
// mochi v2.7.9 scans its retained-message index for a new subscription
// without the lock its writers take (a data race on each topic node's
// retainPath). A gate keeps retained writes and those scans apart, entered
// and left from hooks around each side (retaingate.go).
//
// # Persistence
//
// With PersistState, retained messages and persistent sessions (their
// subscriptions and queued QoS 1/2 messages) are written to a StateStore
// from mochi's hooks and loaded back at Start, as mosquitto's persistence
// keeps them (persist.go).
//
// # Where mochi differs from mosquitto
//
// A side-by-side run against mosquitto found mochi v2.7.9 behaviours that
// clients notice; each is worked around here, naming the upstream code:
// a resumed session's queued messages are resent in queue order
// (resume.go); a QoS 2 PUBLISH resent before its PUBREL gets a plain
// PUBREC, QoS 1/2 publishes to $SYS are acknowledged, malformed filters
// are refused, an unmapped topic alias disconnects, 3.1.1 CONNACKs carry
// 3.1.1 codes, and wildcard subscriptions get no retained $ messages
// (hook.go); PUBACKs are the plain success form and retained messages are
// not capped by age unless configured (limits.go). docs/OPERATIONS.md
// lists what still differs.
//
// # Lifecycle
//
// New → Handle/Router().Register → Start → Close. Close stops accepting,
// disconnects clients, waits for their connections, stops the command
// workers and lets each handler worker deliver what it has queued, all
// bounded by the context given to Close.
package broker
