package ferrite

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The config decoder walks the yaml.Node tree against the Config struct
// itself (instead of yaml.v3's Decode) so that every problem is collected
// rather than the first one failing the load, and each names its key path
// and line: unknown keys, duplicate keys, wrong shapes, bad values.

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	// durationType lets sections of other packages use time.Duration fields
	// ("30s" in YAML and in the environment).
	durationType = reflect.TypeFor[time.Duration]()
)

// yamlKey returns the yaml key of a struct field ("" if skipped).
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// decodeYAML decodes a YAML document into c, recording problems and the
// line of every key.
func decodeYAML(data []byte, c *Config, p *problems) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			p.list = append(p.list, Problem{Msg: strings.TrimPrefix(err.Error(), "yaml: ")})
		}
		return // io.EOF: empty file, all defaults
	}
	if doc.Kind != 0 && len(doc.Content) > 0 {
		decodeNode(doc.Content[0], reflect.ValueOf(c).Elem(), "", p)
	}
	// yaml.Unmarshal reads the first document only: a second one (after
	// "---") would be ignored silently.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		if len(extra.Content) > 0 && !isNull(extra.Content[0]) {
			p.list = append(p.list, Problem{Line: extra.Content[0].Line, Msg: "a second YAML document (after ---): the configuration is one document"})
		}
	} else if !errors.Is(err, io.EOF) {
		p.list = append(p.list, Problem{Msg: strings.TrimPrefix(err.Error(), "yaml: ")})
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unsupported node"
}

func decodeNode(n *yaml.Node, v reflect.Value, path string, p *problems) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if isNull(n) {
		return // "key:" with no value keeps the default
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			p.addAt(path, n.Line, "want a single value, got %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			p.addAt(path, n.Line, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		decodeStruct(n, v, path, p)
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		decodeNode(n, nv.Elem(), path, p)
		v.Set(nv)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			p.addAt(path, n.Line, "want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			p.lines[ip] = item.Line // problems of a whole item (ingest.rules[2]) name its line
			decodeNode(item, s.Index(i), ip, p)
		}
		v.Set(s)
	case reflect.Map:
		decodeMap(n, v, path, p)
	default:
		if n.Kind != yaml.ScalarNode {
			p.addAt(path, n.Line, "want a single value, got %s", kindName(n))
			return
		}
		if err := setScalar(v, n.Value); err != nil {
			p.addAt(path, n.Line, "%v", err)
		}
	}
}

func decodeStruct(n *yaml.Node, v reflect.Value, path string, p *problems) {
	if n.Kind != yaml.MappingNode {
		p.addAt(path, n.Line, "want a mapping of keys, got %s", kindName(n))
		return
	}
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	var known []string
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			fields[k] = i
			known = append(known, k)
		}
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := kn.Value
		kp := joinPath(path, key)
		if kn.Kind != yaml.ScalarNode || key == "<<" {
			p.addAt(kp, kn.Line, "unsupported key (merge keys and complex keys are not allowed)")
			continue
		}
		if seen[key] {
			p.addAt(kp, kn.Line, "duplicate key")
			continue
		}
		seen[key] = true
		fi, ok := fields[key]
		if !ok {
			p.addAt(kp, kn.Line, "unknown key (valid keys here: %s)", strings.Join(known, ", "))
			continue
		}
		p.lines[kp] = kn.Line
		decodeNode(vn, v.Field(fi), kp, p)
	}
}

func decodeMap(n *yaml.Node, v reflect.Value, path string, p *problems) {
	if n.Kind != yaml.MappingNode {
		p.addAt(path, n.Line, "want a mapping, got %s", kindName(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		p.addAt(path, n.Line, "unsupported map key type")
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		kp := joinPath(path, kn.Value)
		if v.MapIndex(reflect.ValueOf(kn.Value).Convert(v.Type().Key())).IsValid() {
			p.addAt(kp, kn.Line, "duplicate key")
			continue
		}
		p.lines[kp] = kn.Line
		ev := reflect.New(v.Type().Elem()).Elem()
		decodeNode(vn, ev, kp, p)
		v.SetMapIndex(reflect.ValueOf(kn.Value).Convert(v.Type().Key()), ev)
	}
}

// setScalar parses s into a scalar field (shared by YAML and environment).
func setScalar(v reflect.Value, s string) error {
	if reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
		return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. 500ms, 30s, 5m)", s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid non-negative integer %q", s)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		v.SetFloat(f)
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		if err := setScalar(nv.Elem(), s); err != nil {
			return err
		}
		v.Set(nv)
	case reflect.Slice:
		parts := strings.Split(s, ",")
		sl := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, part := range parts {
			if err := setScalar(sl.Index(i), strings.TrimSpace(part)); err != nil {
				return err
			}
		}
		v.Set(sl)
	default:
		return fmt.Errorf("unsupported field type %s", v.Type())
	}
	return nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q (want true or false)", s)
}
