package broker

import (
	"bytes"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hook is the broker's single mochi hook: authentication, keepalive limits,
// CONNACK properties mochi leaves out, command routing and handler dispatch.
type hook struct {
	mqtt.HookBase
	b *Broker
}

var hookEvents = []byte{
	mqtt.OnConnectAuthenticate,
	mqtt.OnACLCheck,
	mqtt.OnConnect,
	mqtt.OnPacketEncode,
	mqtt.OnPublish,
}

func (h *hook) ID() string { return "ferrite" }

func (h *hook) Provides(b byte) bool { return bytes.IndexByte(hookEvents, b) >= 0 }

func clientInfo(cl *mqtt.Client) ClientInfo {
	return ClientInfo{
		ID:              cl.ID,
		Username:        string(cl.Properties.Username),
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		ProtocolVersion: cl.Properties.ProtocolVersion,
	}
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	return h.b.auth.Authenticate(clientInfo(cl), pk.Connect.Password)
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return h.b.auth.Authorize(clientInfo(cl), topic, write)
}

// OnConnect caps the client's keepalive. mochi parses CONNECT before this
// hook and arms the read deadline from cl.State.Keepalive right after it.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
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
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode < minimumFailureReasonCode &&
		cl.Properties.ProtocolVersion == 5 {
		pk.Properties.MaximumPacketSize = h.b.opts.Limits.MaxPacketSize
		pk.Properties.TopicAliasMaximum = h.b.opts.Limits.TopicAliasMaximum
	}
	return pk
}

// OnPublish routes commands to the router and messages to the handlers.
// mochi calls it on the publishing client's read goroutine, after topic alias
// resolution and the ACL check, before it acknowledges or forwards anything.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	if cl.Net.Inline {
		return pk, nil // our own publishes (command replies, Broker.Publish)
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
		ackType := packets.Puback
		if pk.FixedHeader.Qos == 2 {
			ackType = packets.Pubrec // [MQTT-4.3.3-8] with a failure code ends the QoS 2 flow
		}
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: ackType},
			PacketID:    pk.PacketID,
			ReasonCode:  re.Code,
			Properties:  packets.Properties{ReasonString: re.Reason},
		})
	}
	return packets.ErrRejectPacket
}
