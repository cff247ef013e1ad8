package crdt

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
)

// Whole-value encodings: under the LastWriteWins family a collection write
// replaces the key with a head whose Value holds the entire collection.
// These encodings are canonical (sorted where order is not meaningful) and
// never empty: an emptied collection is written as a Deleted head.

// FieldValue is one field of a hash and its value.
type FieldValue struct {
	Field string
	Value []byte
}

func encodeSetValue(members []string) []byte {
	var b []byte
	b = appendUvarint(b, uint64(len(members)))
	for _, m := range members {
		b = appendString(b, m)
	}
	return b
}

// decodeSetValue returns the members, ascending.
func decodeSetValue(v []byte) ([]string, error) {
	d := decoder{b: v}
	n := d.count(1)
	if d.err == nil && n == 0 {
		d.failf("empty set value")
	}
	out := make([]string, 0, n)
	for i := range n {
		m := d.string()
		if d.err != nil {
			break
		}
		if i > 0 && m <= out[i-1] {
			d.failf("set value members not sorted")
			break
		}
		out = append(out, m)
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return out, nil
}

func encodeListValue(items [][]byte) []byte {
	var b []byte
	b = appendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = appendBytes(b, it)
	}
	return b
}

// decodeListValue returns the items in list order; they alias v.
func decodeListValue(v []byte) ([][]byte, error) {
	d := decoder{b: v}
	n := d.count(1)
	if d.err == nil && n == 0 {
		d.failf("empty list value")
	}
	out := make([][]byte, 0, n)
	for range n {
		out = append(out, d.bytes())
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return out, nil
}

func encodeHashValue(fields []FieldValue) []byte {
	var b []byte
	b = appendUvarint(b, uint64(len(fields)))
	for _, f := range fields {
		b = appendString(b, f.Field)
		b = appendBytes(b, f.Value)
	}
	return b
}

// decodeHashValue returns the fields sorted by name; values alias v.
func decodeHashValue(v []byte) ([]FieldValue, error) {
	d := decoder{b: v}
	n := d.count(2)
	if d.err == nil && n == 0 {
		d.failf("empty hash value")
	}
	out := make([]FieldValue, 0, n)
	for i := range n {
		f := FieldValue{Field: d.string(), Value: d.bytes()}
		if d.err != nil {
			break
		}
		if i > 0 && f.Field <= out[i-1].Field {
			d.failf("hash value fields not sorted")
			break
		}
		out = append(out, f)
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return out, nil
}

// validateValue checks a whole-value head's Value for its kind.
func validateValue(k Kind, v []byte) error {
	var err error
	switch k {
	case KindCounter:
		if _, ok := parseInt(v); !ok {
			err = ErrCorrupt
		}
	case KindSet:
		_, err = decodeSetValue(v)
	case KindList:
		_, err = decodeListValue(v)
	case KindHash:
		_, err = decodeHashValue(v)
	case KindAggregate:
		err = ErrCorrupt // aggregates always carry elements
	}
	return err
}

// sortFields sorts field values by name and keeps the last value given for
// a repeated name (HSET k f 1 f 2 sets f to 2).
func sortFields(fvs []FieldValue) []FieldValue {
	out := slices.Clone(fvs)
	slices.SortStableFunc(out, func(a, b FieldValue) int { return cmp.Compare(a.Field, b.Field) })
	w := 0
	for i := range out {
		if w > 0 && out[w-1].Field == out[i].Field {
			out[w-1] = out[i]
			continue
		}
		out[w] = out[i]
		w++
	}
	return out[:w]
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return bytes.Clone(b)
}

// DisplayValue renders a head's Value for people (conflict listings): a
// string or counter as a quoted string, a whole-value list or set as a JSON
// array, a whole-value hash as a JSON object, an element-carrying or
// deleted head as "".
func DisplayValue(k Kind, v []byte) string {
	var out any
	var err error
	switch {
	case k.mergeable() && len(v) > 0 && k != KindCounter:
		switch k {
		case KindList:
			var items [][]byte
			if items, err = decodeListValue(v); err == nil {
				strs := make([]string, len(items))
				for i, it := range items {
					strs[i] = string(it)
				}
				out = strs
			}
		case KindSet:
			out, err = decodeSetValue(v)
		case KindHash:
			var fvs []FieldValue
			if fvs, err = decodeHashValue(v); err == nil {
				m := make(map[string]string, len(fvs))
				for _, f := range fvs {
					m[f.Field] = string(f.Value)
				}
				out = m
			}
		}
	default:
		return strconv.Quote(string(v))
	}
	if err != nil {
		return strconv.Quote(string(v))
	}
	j, _ := json.Marshal(out)
	return string(j)
}
