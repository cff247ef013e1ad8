package syncer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ferrite-edge/ferrite/crdt"
)

var update = flag.Bool("update", false, "print the golden table instead of checking it")

func encodeCase(c goldenCase) []byte {
	if c.compress {
		var e Encoder
		return append([]byte(nil), e.Encode(c.msg)...)
	}
	return Encode(c.msg)
}

// normalize makes decoded and constructed messages comparable: contexts
// compare by encoding, nil and empty slices alike.
func normalize(m Message) string {
	return fmt.Sprintf("%#v", strings.ReplaceAll(fmt.Sprintf("%+v", deref(m)), "[]", "nil"))
}

func deref(m Message) any {
	v := reflect.ValueOf(m).Elem()
	out := map[string]string{}
	for i := range v.NumField() {
		f := v.Field(i)
		var s string
		switch x := f.Interface().(type) {
		case *crdt.Context:
			if x == nil {
				x = crdt.NewContext()
			}
			s = hex.EncodeToString(x.AppendBinary(nil))
		default:
			s = fmt.Sprintf("%+v", x)
			if f.Kind() == reflect.Slice && f.Len() == 0 {
				s = "nil"
			}
		}
		out[v.Type().Field(i).Name] = s
	}
	return out
}

// TestGolden: every case encodes to its golden bytes and decodes back to
// the same message; decode→encode is the identity.
func TestGolden(t *testing.T) {
	cases := goldenCases()
	if *update {
		var sb strings.Builder
		for _, c := range cases {
			fmt.Fprintf(&sb, "| %s | %s | `%x` |\n", c.name, c.msg.Type(), encodeCase(c))
		}
		t.Logf("golden table:\n%s", sb.String())
		return
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := encodeCase(c)
			want := goldenHex(t, c.name)
			if hex.EncodeToString(got) != want {
				t.Fatalf("encoding changed:\n got %x\nwant %s", got, want)
			}
			raw, _ := hex.DecodeString(want)
			m, err := Decode(raw)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if normalize(m) != normalize(c.msg) {
				t.Fatalf("decoded\n%v\nwant\n%v", deref(m), deref(c.msg))
			}
			if c.compress != (raw[4]&flagLZ4 != 0) {
				t.Fatalf("compressed flag = %v, want %v", raw[4]&flagLZ4 != 0, c.compress)
			}
			if !c.compress && !bytes.Equal(Encode(m), raw) {
				t.Fatalf("re-encoding differs")
			}
		})
	}
}

// TestDecodeBad: garbage is an error with a precise message, never a panic.
func TestDecodeBad(t *testing.T) {
	for _, c := range badMessages {
		t.Run(c.name, func(t *testing.T) {
			raw, err := hex.DecodeString(c.hex)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(raw)
			if err == nil {
				t.Fatalf("Decode(%s) = %#v, want an error", c.hex, m)
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v does not wrap ErrCorrupt or ErrVersion", err)
			}
			if !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %q does not mention %q", err, c.err)
			}
		})
	}
}

// TestDecodeTruncations: every strict prefix of every golden message is
// refused.
func TestDecodeTruncations(t *testing.T) {
	for _, c := range goldenCases() {
		raw := encodeCase(c)
		for n := range len(raw) {
			if _, err := Decode(raw[:n]); err == nil {
				t.Fatalf("%s: prefix of %d/%d bytes decoded", c.name, n, len(raw))
			}
		}
	}
}

// TestDecodeDoesNotAlias: the decoded message owns its bytes.
func TestDecodeDoesNotAlias(t *testing.T) {
	for _, c := range goldenCases() {
		raw := encodeCase(c)
		m, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		before := normalize(m)
		for i := range raw {
			raw[i] ^= 0xff
		}
		if normalize(m) != before {
			t.Fatalf("%s: decoded message changed with its input", c.name)
		}
	}
}

// TestCompressionOnlyWhenSmaller: the LZ4 flag is set only when it saves
// bytes, and never below the threshold.
func TestCompressionOnlyWhenSmaller(t *testing.T) {
	var e Encoder
	small := &DeltaSync{Session: 1, After: 0, Upto: 1, Ops: goldenOps(1)}
	if raw := e.Encode(small); raw[4] != 0 {
		t.Fatalf("a %d-byte message was compressed", len(raw))
	}
	noise := &FullSync{Session: 1, Snapshot: 1, SnapSeq: 1}
	entry := make([]byte, 4096)
	x := uint32(1)
	for i := range entry {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		entry[i] = byte(x)
	}
	noise.Entries = append(noise.Entries, struct {
		Key   string
		Entry []byte
	}{"k", entry})
	if raw := e.Encode(noise); raw[4] != 0 {
		t.Fatalf("incompressible body was compressed")
	}
	big := &DeltaSync{Session: 1, After: 0, Upto: 100, Ops: goldenOps(100)}
	raw := e.Encode(big)
	if raw[4] != flagLZ4 || len(raw) >= len(Encode(big)) {
		t.Fatalf("a repetitive batch was not compressed (%d vs %d bytes)", len(raw), len(Encode(big)))
	}
	m, err := Decode(raw)
	if err != nil || normalize(m) != normalize(big) {
		t.Fatalf("compressed round trip: %v", err)
	}
}
