package syncer

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// FuzzDecode: Decode never panics; what it accepts re-encodes to the same
// bytes (the encoding is canonical) or, for an LZ4 body, to a message
// that decodes equal.
func FuzzDecode(f *testing.F) {
	for _, c := range goldenCases() {
		f.Add(encodeCase(c))
	}
	for _, c := range badMessages {
		raw, _ := hex.DecodeString(c.hex)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Decode(raw)
		if err != nil {
			return
		}
		again := Encode(m)
		if raw[4]&flagLZ4 == 0 {
			if !bytes.Equal(again, raw) {
				t.Fatalf("re-encoding differs:\n in %x\nout %x", raw, again)
			}
			return
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if normalize(m2) != normalize(m) {
			t.Fatalf("round trip changed the message")
		}
	})
}
