package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Message records (see persist.go): retained messages and the messages
// queued for persistent sessions are both mochi's storage.Message. A
// retained record adds what storage.Message.ToPacket drops, the message's
// absolute expiry and protocol version, so MQTT 5 message expiry survives a
// restart; the broker loads retained packets itself (loadRetained).

// messageRecord is the storage.Message of pk.
func messageRecord(pk packets.Packet) storage.Message {
	props := pk.Properties.Copy(false)
	return storage.Message{
		Origin: pk.Origin, FixedHeader: pk.FixedHeader, TopicName: pk.TopicName, Payload: pk.Payload,
		Created: pk.Created, PacketID: pk.PacketID,
		Properties: storage.MessageProperties{
			PayloadFormat: props.PayloadFormat, PayloadFormatFlag: props.PayloadFormatFlag,
			MessageExpiryInterval: props.MessageExpiryInterval, ContentType: props.ContentType,
			ResponseTopic: props.ResponseTopic, CorrelationData: props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier, User: props.User,
		},
	}
}

// retainedRecord is a retained message's record.
type retainedRecord struct {
	storage.Message
	Expiry          int64 `json:"expiry,omitempty"`
	ProtocolVersion byte  `json:"protocol_version,omitempty"`
}

var errRetainedRecord = errors.New("malformed retained message record")

func encodeRetained(pk packets.Packet) []byte {
	m := messageRecord(pk)
	m.T = storage.RetainedKey
	rec, err := json.Marshal(retainedRecord{Message: m, Expiry: pk.Expiry, ProtocolVersion: pk.ProtocolVersion})
	if err != nil {
		panic(err) // a struct of strings, numbers and byte slices always marshals
	}
	return rec
}

// decodeRetained rebuilds the retained packet of topic from its record.
func decodeRetained(topic string, rec []byte) (packets.Packet, error) {
	var r retainedRecord
	if err := json.Unmarshal(rec, &r); err != nil {
		return packets.Packet{}, fmt.Errorf("%w: %v", errRetainedRecord, err)
	}
	if r.FixedHeader.Qos > 2 || len(r.Payload) == 0 {
		return packets.Packet{}, errRetainedRecord
	}
	pk := r.ToPacket()
	pk.TopicName = topic // the key names it
	pk.FixedHeader.Type, pk.FixedHeader.Retain = packets.Publish, true
	pk.Expiry, pk.ProtocolVersion = r.Expiry, r.ProtocolVersion
	return pk, nil
}

// Retained returns the retained messages on the topics filter (MQTT
// wildcards) matches, as a new subscriber to filter would get them. It
// lets the node find retained messages it published and must remove, such
// as the Home Assistant discovery configs of sensors forgotten while the
// gateway was down. Messages past their expiry are left out. The scan
// passes the retained-index gate (retaingate.go), as a subscriber's does.
func (b *Broker) Retained(filter string) ([]Message, error) {
	if !validFilter(filter) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidFilter, filter)
	}
	if b.closing.Load() {
		return nil, ErrClosed
	}
	b.gate.enterScan()
	pks := b.server.Topics.Messages(filter)
	b.gate.leaveScan()
	now := time.Now().Unix()
	out := make([]Message, 0, len(pks))
	for _, pk := range pks {
		if len(pk.Payload) == 0 || (pk.Expiry > 0 && pk.Expiry < now) {
			continue
		}
		out = append(out, Message{
			Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retain: true,
			ProtocolVersion: pk.ProtocolVersion, ContentType: pk.Properties.ContentType,
			Received: time.Unix(pk.Created, 0),
		})
	}
	return out, nil
}
