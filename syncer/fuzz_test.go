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

// FuzzDecodeState: the persisted syncer records decode strictly (errors,
// never panics) and round-trip.
func FuzzDecodeState(f *testing.F) {
	es := edgeState{HubID: "hub", HubInc: 7, DownSeq: 9, UpAcked: 3, NeedFullUp: true, DropUpTo: 4, Dropped: 2, LastSync: -1}
	f.Add(byte(0), es.marshal())
	hm := hubMeta{Inc: 5, StateGen: 2}
	f.Add(byte(1), hm.marshal())
	er := edgeRecord{DownCursor: 3, HaveGen: 1, UpAcked: 8, LastSeen: 1708300800000}
	f.Add(byte(2), er.marshal())
	f.Add(byte(3), marshalNames([]string{"a", "b"}))
	f.Fuzz(func(t *testing.T, kind byte, raw []byte) {
		switch kind % 4 {
		case 0:
			var s edgeState
			if s.unmarshal(raw) == nil && !bytes.Equal(s.marshal(), raw) {
				t.Fatalf("edge state does not round-trip: %x", raw)
			}
		case 1:
			var m hubMeta
			if m.unmarshal(raw) == nil && !bytes.Equal(m.marshal(), raw) {
				t.Fatalf("hub meta does not round-trip: %x", raw)
			}
		case 2:
			var r edgeRecord
			if r.unmarshal(raw) == nil && !bytes.Equal(r.marshal(), raw) {
				t.Fatalf("edge record does not round-trip: %x", raw)
			}
		case 3:
			if n, err := unmarshalNames(raw); err == nil && !bytes.Equal(marshalNames(n), raw) {
				t.Fatalf("names do not round-trip: %x", raw)
			}
		}
	})
}
