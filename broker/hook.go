package broker

import (
	"bytes"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hook is the broker's single mochi hook: authentication, keepalive limits,
// CONNACK properties mochi leaves out, command routing, handler dispatch and
// a session-takeover fix (takeover.go).
type hook struct {
	mqtt.HookBase
	b *Broker
}

var hookEvents = []byte{
	mqtt.OnConnectAuthenticate,
	mqtt.OnACLCheck,
	mqtt.OnConnect,
	mqtt.OnPacketEncode,
	mqtt.OnPacketRead,
	mqtt.OnPublish,
	mqtt.OnSessionEstablish,
	mqtt.OnSubscribed,
	mqtt.OnSubscribe,
	mqtt.OnWill,
}

func (h *hook) ID() string { return "ferrite" }

func (h *hook) Provides(b byte) bool { return bytes.IndexByte(hookEvents, b) >= 0 }

func clientInfo(cl *mqtt.Client) ClientInfo {
	c := ClientInfo{
		ID:              cl.ID,
		Username:        string(cl.Properties.Username),
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		ProtocolVersion: cl.Properties.ProtocolVersion,
	}
	if m := metaOf(cl); m != nil {
		c.CertIdentity = m.identity
	}
	return c
}

// clientInfo also knows the certificate identity of a session restored from
// the store, which has no connection.
func (b *Broker) clientInfo(cl *mqtt.Client) ClientInfo {
	c := clientInfo(cl)
	if cl.Net.Conn == nil && !cl.Net.Inline {
		if id, ok := b.restoredIdentity.Load(cl.ID); ok {
			c.CertIdentity = id.(string)
		}
	}
	return c
}

// OnConnectAuthenticate asks the Authenticator, then checks that the
// client may publish its will: mochi publishes a will without any ACL check
// when the client goes away, so a will the client could not publish itself
// refuses the connection (as mosquitto does).
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	c := clientInfo(cl)
	if !h.b.auth.Authenticate(c, pk.Connect.Password) {
		return false
	}
	// A client id whose session (connected or kept) belongs to another user
	// is refused: mochi hands the session over, with its queued messages
	// resent without any ACL check (inheritClientSession), so taking over
	// alice's client id would read her messages. It would also let anyone
	// kick a client off by reusing its id.
	if h.sessionOfAnother(cl, c) {
		h.b.metrics.connectRefused.WithLabelValues("client_id_in_use").Inc()
		h.b.logRefused.Do(func() {
			h.b.log.Warn("connection refused: the client id's session belongs to another user", "client", cl.ID,
				"remote", cl.Net.Remote, "user", string(cl.Properties.Username))
		})
		return false
	}
	if pk.Connect.WillFlag && !h.b.auth.Authorize(c, pk.Connect.WillTopic, true) {
		h.b.logRefused.Do(func() {
			h.b.log.Warn("connection refused: will topic not authorized", "client", cl.ID, "remote", cl.Net.Remote,
				"topic", pk.Connect.WillTopic)
		})
		return false
	}
	return true
}

// sessionOfAnother reports whether cl.ID names a session (connected or
// kept) of another identity than c's.
func (h *hook) sessionOfAnother(cl *mqtt.Client, c ClientInfo) bool {
	ids, ok := h.b.auth.(SessionIdentifier)
	if !ok {
		return false
	}
	ex, ok := h.b.server.Clients.Get(cl.ID)
	return ok && ids.Identity(h.b.clientInfo(ex)) != ids.Identity(c)
}

// OnWill re-checks the will when it is about to be published: the ACL may
// have been reloaded since the client connected. A will no longer allowed
// is sent to a topic under $ferrite/void/ that no client may subscribe to
// (mochi's OnWill cannot cancel a will).
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if h.b.auth.Authorize(clientInfo(cl), will.TopicName, true) {
		return will, nil
	}
	will.TopicName = voidTopic
	will.Retain = false
	return will, nil
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if strings.HasPrefix(topic, voidPrefix) {
		return false // neither readable nor writable by any client
	}
	if write && topic == "" {
		// An alias-only MQTT 5 publish, checked before mochi resolves the
		// alias: OnPublish checks the resolved topic.
		return true
	}
	if !write && topic != "" && topic[0] == '$' && retainedPhase(cl) && !subscribedTo(cl, topic) {
		return false
	}
	return h.b.auth.Authorize(h.b.clientInfo(cl), topic, write)
}

// Retained $ topics and wildcards.
//
// mochi v2.7.9 hands a subscription starting with a wildcard (#, +/...) the
// *retained* messages of $ topics (topics.go skips only $SYS in that scan),
// though never their live messages [MQTT-4.7.2-1]. It sends retained
// messages right after the SUBACK, each ACL-checked, so from OnSubscribed
// until the client's next packet (retainedPhase) a $ topic none of the
// client's filters really matches is refused. Subscribe-time checks (of
// the filters themselves) come before OnSubscribed; live messages matched
// a filter of the client and pass.

// OnSubscribed opens the client's retained phase.
func (h *hook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	if m := metaOf(cl); m != nil {
		m.retainedPhase.Store(true)
	}
}

func retainedPhase(cl *mqtt.Client) bool {
	m := metaOf(cl)
	return m != nil && m.retainedPhase.Load()
}

// subscribedTo reports whether one of cl's filters matches topic under
// MQTT's rules.
func subscribedTo(cl *mqtt.Client, topic string) bool {
	for f := range cl.State.Subscriptions.GetAll() {
		if inner, ok := sharedFilter(f); ok {
			// mochi delivers live $ messages to shared subscriptions
			// starting with a wildcard, and never retained ones: let
			// them through whether or not the phase is open.
			if matchLevels(inner, topic) {
				return true
			}
			continue
		}
		if matchTopic(f, topic) {
			return true
		}
	}
	return false
}

// voidTopic receives the wills that are no longer authorized when they are
// sent (see OnWill); OnACLCheck lets no client read or write under
// voidPrefix, so they reach nobody.
const (
	voidPrefix = "$ferrite/void/"
	voidTopic  = voidPrefix + "will"
)

// OnConnect makes a verified client certificate's common name the user
// name (Options.IdentityAsUsername) and caps the client's keepalive. mochi
// parses CONNECT before this hook and arms the read deadline from
// cl.State.Keepalive right after it.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if m := metaOf(cl); m != nil {
		if m.connected != nil {
			m.connected()
		}
		if h.b.opts.IdentityAsUsername {
			if id := certIdentity(m.tls); id != "" {
				m.identity = id
				cl.Properties.Username = []byte(id)
			}
		}
	}
	if max := h.b.opts.Limits.keepaliveSeconds(); max > 0 {
		if ka := cl.State.Keepalive; ka == 0 || ka > max {
			cl.State.Keepalive = max
			cl.State.ServerKeepalive = true // sent as Server Keep Alive to v5 clients [MQTT-3.2.2-21]
		}
	}
	return nil
}

// OnPacketEncode adds the Maximum Packet Size and Topic Alias Maximum to a
// successful MQTT 5 CONNACK: mochi enforces both but never announces them, so
// a v5 client would otherwise assume no topic aliases and no size limit.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if t := pk.FixedHeader.Type; t == packets.Suback || t == packets.Unsuback {
		restoreOutbound(cl, &pk)
	}
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode < minimumFailureReasonCode &&
		cl.Properties.ProtocolVersion == 5 {
		pk.Properties.MaximumPacketSize = h.b.opts.Limits.MaxPacketSize
		pk.Properties.TopicAliasMaximum = h.b.opts.Limits.TopicAliasMaximum
	}
	if pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion < 5 && pk.ReasonCode > v3ConnackMax {
		// mochi maps MQTT 5 refusal codes to 3.1.1 ones from a table
		// that lacks some: an empty client id with clean session off
		// [MQTT-3.1.3-8] went out as 0x80, which 3.1.1 does not have.
		switch pk.ReasonCode {
		case packets.ErrUnspecifiedError.Code: // mochi's code for that case
			pk.ReasonCode = packets.Err3ClientIdentifierNotValid.Code
		case packets.ErrNotAuthorized.Code, packets.ErrBadAuthenticationMethod.Code:
			pk.ReasonCode = packets.Err3NotAuthorized.Code
		default:
			pk.ReasonCode = packets.Err3ServerUnavailable.Code
		}
	}
	return pk
}

// v3ConnackMax is the highest MQTT 3.1.1 CONNACK return code (5, not
// authorized).
const v3ConnackMax = 5

// overQuotaFilter replaces a filter over Limits.MaxSubscriptions: it is
// invalid ('#' not last), so mochi refuses it in the SUBACK (0x8F topic
// filter invalid for MQTT 5, 0x80 for 3.1.1) without subscribing.
const overQuotaFilter = "#/over-quota"

// invalidFilter replaces a filter validSubscription refuses, the same way.
const invalidFilter = "#/invalid"

// OnSubscribe refuses the filters that would take the client past
// Limits.MaxSubscriptions (mochi has no such limit: 20,000 filters of 30 KB
// each were accepted, about 1 GB, in the security audit). Filters the client
// already holds are resubscriptions and always pass.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	max := h.b.opts.Limits.MaxSubscriptions
	have := cl.State.Subscriptions.Len()
	refused := 0
	for i := range pk.Filters {
		f := pk.Filters[i].Filter
		if !validSubscription(f) {
			// mochi accepts x/a# and a+/b, which then match nothing; its
			// own check refuses this one (0x8F, 0x80 for 3.1.1).
			pk.Filters[i].Filter = invalidFilter
			continue
		}
		if _, ok := cl.State.Subscriptions.Get(f); ok {
			continue
		}
		if have >= max {
			pk.Filters[i].Filter = overQuotaFilter
			refused++
			continue
		}
		have++
	}
	if refused > 0 {
		h.b.metrics.subscriptionsRefused.Add(float64(refused))
		h.b.logRefused.Do(func() {
			h.b.log.Warn("subscriptions refused: the client holds its maximum", "client", cl.ID,
				"remote", cl.Net.Remote, "max", max, "refused", refused)
		})
	}
	return pk
}

// OnPacketRead works around mochi's shared packet id table (packetid.go)
// and its silence towards QoS 1/2 publishes to $SYS.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if m := metaOf(cl); m != nil && m.retainedPhase.Load() {
		m.retainedPhase.Store(false) // the previous packet is done
	}
	switch pk.FixedHeader.Type {
	case packets.Subscribe, packets.Unsubscribe:
		h.b.remapInbound(cl, &pk)
	case packets.Publish:
		switch {
		case pk.FixedHeader.Qos == 2 && resentQoS2(cl, pk):
			// A QoS 2 PUBLISH sent again before its PUBREL (the client
			// missed our PUBREC): mochi answers PUBREC 0x91 "packet
			// identifier in use", which MQTT 5 clients report as a failed
			// publish and retry, duplicating the message. The spec wants a
			// plain PUBREC and no second delivery [MQTT-4.3.3-10]: send it
			// and turn the packet into one mochi drops unanswered.
			_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID})
			pk.TopicName = discardTopic
		case pk.FixedHeader.Qos > 0 && isSysTopic(pk.TopicName):
			refuseSysPublish(cl, pk)
		}
	}
	return pk, nil
}

// discardTopic makes mochi drop a PUBLISH without acknowledging or
// forwarding it (processPublish returns at once for a $SYS topic).
const discardTopic = "$SYS/ferrite/discard"

// resentQoS2 reports whether pk repeats a QoS 2 PUBLISH the broker has
// acknowledged with a PUBREC and not yet seen released.
func resentQoS2(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.Net.Inline {
		return false
	}
	in, ok := cl.State.Inflight.Get(pk.PacketID)
	return ok && in.FixedHeader.Type == packets.Pubrec
}

// isSysTopic is mochi's test for a $SYS topic (case-insensitive).
func isSysTopic(topic string) bool {
	return len(topic) >= len(mqtt.SysPrefix) && strings.EqualFold(topic[:len(mqtt.SysPrefix)], mqtt.SysPrefix)
}

// refuseSysPublish acknowledges a QoS 1/2 publish to $SYS, which mochi
// v2.7.9 drops without any acknowledgement (processPublish returns before
// it acks an invalid topic), leaving the client's in-flight slot stuck and
// the message resent on every reconnect [MQTT-4.3.2-4]. A mosquitto bridge
// publishes its connection state under $SYS/broker/connection/ at QoS 1.
// MQTT 5 clients get 0x87 (not authorized), as from mosquitto; 3.1.1 ones
// a plain PUBACK/PUBREC (their PUBREL then gets mochi's PUBCOMP).
func refuseSysPublish(cl *mqtt.Client, pk packets.Packet) {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
	}
	if cl.Properties.ProtocolVersion == 5 {
		ack.ReasonCode = packets.ErrNotAuthorized.Code
	}
	_ = cl.WritePacket(ack)
}

// OnPublish routes commands to the router and messages to the handlers.
// mochi calls it on the publishing client's read goroutine, after topic alias
// resolution and the ACL check, before it acknowledges or forwards anything.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	if cl.Net.Inline {
		return pk, nil // our own publishes (command replies, Broker.Publish)
	}
	if err := b.rateLimited(cl, &pk); err != nil {
		return pk, err
	}
	if pk.Properties.TopicAlias > 0 && pk.TopicName == "" {
		// An alias the client never mapped: mochi acknowledges the
		// publish and sends it nowhere. It is a protocol error (MQTT 5
		// 3.3.2.3.4): disconnect with 0x82, as mosquitto does.
		_ = b.server.DisconnectClient(cl, packets.ErrProtocolViolation)
		return pk, packets.ErrRejectPacket
	}
	if pk.Properties.TopicAlias > 0 && !b.auth.Authorize(clientInfo(cl), pk.TopicName, true) {
		// mochi checks the ACL before it resolves a topic alias (v2.7.9
		// processPublish): an alias-only publish was checked against "".
		// This is the real check, on the resolved topic.
		b.writeRefusal(cl, &pk, packets.ErrNotAuthorized.Code, packets.ErrNotAuthorized.Reason)
		return pk, packets.ErrRejectPacket
	}
	if pk.TopicName == CommandTopic {
		b.router.submitFromClient(cl, &pk)
		// Acknowledged (QoS 1/2) but neither retained nor forwarded.
		return pk, packets.CodeSuccessIgnore
	}
	if err := b.dispatch(cl, &pk); err != nil {
		return pk, b.refuse(cl, &pk, err)
	}
	return pk, nil
}

// refuse answers a QoS 1/2 publish that a handler refused and tells mochi to
// drop it. mochi (v2.7.9 processPublish) turns an OnPublish error that is a
// packets.Code into a PUBACK for v5 clients, but it sends a PUBACK even for
// QoS 2 (which needs a PUBREC) and logs every refusal at error level; for
// 3.1.1 clients it ignores the error and acknowledges the message as stored.
// So the v5 acknowledgement is written here, and ErrRejectPacket (no ack, no
// forwarding) is returned for every version.
func (b *Broker) refuse(cl *mqtt.Client, pk *packets.Packet, err error) error {
	re := rejectFor(err)
	b.logRejects.Do(func() {
		b.log.Warn("message refused by handler", "client", cl.ID, "topic", pk.TopicName,
			"qos", pk.FixedHeader.Qos, "code", re.Code, "error", err)
	})
	if cl.Properties.ProtocolVersion == 5 {
		b.writeRefusal(cl, pk, re.Code, re.Reason)
	}
	return packets.ErrRejectPacket
}

// writeRefusal sends an MQTT 5 client the failure acknowledgement of a
// QoS 1/2 publish (nothing for QoS 0, which has no acknowledgement).
func (b *Broker) writeRefusal(cl *mqtt.Client, pk *packets.Packet, code byte, reason string) {
	if pk.FixedHeader.Qos == 0 {
		return
	}
	ackType := packets.Puback
	if pk.FixedHeader.Qos == 2 {
		ackType = packets.Pubrec // [MQTT-4.3.3-8] with a failure code ends the QoS 2 flow
	}
	_ = cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: ackType},
		PacketID:    pk.PacketID,
		ReasonCode:  code,
		Properties:  packets.Properties{ReasonString: reason},
	})
}
