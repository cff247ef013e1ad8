package broker

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// publishStream is a CONNECT followed by n small QoS 0 PUBLISH packets
// (topic sensors/t1, 4-byte payload), as a sensor gateway sees them.
func publishStream(n int) []byte {
	pub := []byte{0x30, 0x10, 0x00, 0x0a, 's', 'e', 'n', 's', 'o', 'r', 's', '/', 't', '1', '2', '2', '.', '5'}
	return append(append([]byte{}, connectV4...), bytes.Repeat(pub, n)...)
}

// BenchmarkGuard measures the guard's cost per packet: framing plus a decode
// with mochi's decoder, reading through a 2 KiB buffer as mochi's bufio does.
func BenchmarkGuard(b *testing.B) {
	const packets = 1000
	stream := publishStream(packets)
	policy := &guardPolicy{maxPacketSize: 1 << 20, topicAliasMaximum: 64}
	buf := make([]byte, 2048)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		gc := newGuardConn(&byteConn{r: bytes.NewReader(stream), chunk: 4096}, policy)
		for {
			if _, err := gc.Read(buf); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*packets), "ns/packet")
}
