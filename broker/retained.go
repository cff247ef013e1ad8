package broker

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Retained message records (see persist.go). mochi's own loader
// (StoredRetainedMessages → storage.Message.ToPacket) drops a message's
// absolute expiry and protocol version, so MQTT 5 message expiry would not
// survive a restart; the broker encodes and loads retained packets itself.

// The record of a retained message, version 1:
//
//	byte     1
//	varint   created (unix s), expiry (unix s, 0: none)
//	byte     QoS, protocol version, payload format flag<<1 | payload format
//	string   origin client id, content type, response topic
//	bytes    correlation data
//	uvarint  user property count, then key and value strings
//	rest     payload
//
// Strings and bytes are uvarint length + content.
const retainedVersion = 1

var errRetainedRecord = errors.New("malformed retained message record")

func encodeRetained(pk packets.Packet) []byte {
	p := &pk.Properties
	n := 32 + len(pk.Origin) + len(p.ContentType) + len(p.ResponseTopic) + len(p.CorrelationData) + len(pk.Payload)
	for _, u := range p.User {
		n += 8 + len(u.Key) + len(u.Val)
	}
	b := make([]byte, 0, n)
	b = append(b, retainedVersion)
	b = binary.AppendVarint(b, pk.Created)
	b = binary.AppendVarint(b, pk.Expiry)
	pf := p.PayloadFormat & 1
	if p.PayloadFormatFlag {
		pf |= 2
	}
	b = append(b, pk.FixedHeader.Qos, pk.ProtocolVersion, pf)
	for _, s := range []string{pk.Origin, p.ContentType, p.ResponseTopic} {
		b = appendString(b, s)
	}
	b = appendString(b, string(p.CorrelationData))
	b = binary.AppendUvarint(b, uint64(len(p.User)))
	for _, u := range p.User {
		b = appendString(appendString(b, u.Key), u.Val)
	}
	return append(b, pk.Payload...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decodeRetained rebuilds the retained packet of topic from its record.
func decodeRetained(topic string, rec []byte) (packets.Packet, error) {
	r := retainedReader{b: rec}
	if r.byte() != retainedVersion {
		return packets.Packet{}, fmt.Errorf("%w: version", errRetainedRecord)
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
		TopicName:   topic,
	}
	pk.Created, pk.Expiry = r.varint(), r.varint()
	pk.FixedHeader.Qos, pk.ProtocolVersion = r.byte(), r.byte()
	pf := r.byte()
	pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = pf&1, pf&2 != 0
	pk.Origin = r.string()
	pk.Properties.ContentType = r.string()
	pk.Properties.ResponseTopic = r.string()
	if c := r.string(); c != "" {
		pk.Properties.CorrelationData = []byte(c)
	}
	nu := r.uvarint()
	if nu > uint64(len(r.b)) {
		r.err = true
	}
	for i := uint64(0); i < nu && !r.err; i++ {
		pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: r.string(), Val: r.string()})
	}
	if r.err || pk.FixedHeader.Qos > 2 {
		return packets.Packet{}, errRetainedRecord
	}
	pk.Payload = append([]byte(nil), r.b...)
	if len(pk.Payload) == 0 {
		return packets.Packet{}, fmt.Errorf("%w: empty payload", errRetainedRecord)
	}
	return pk, nil
}

// retainedReader reads a record; after a short read err is set and every
// read returns zero values.
type retainedReader struct {
	b   []byte
	err bool
}

func (r *retainedReader) byte() byte {
	if r.err || len(r.b) == 0 {
		r.err = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *retainedReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if r.err || n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *retainedReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if r.err || n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *retainedReader) string() string {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
