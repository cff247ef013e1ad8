package ferrite

import (
	"reflect"
	"sort"
	"strings"
)

// EnvPrefix starts every environment override: FERRITE_<PATH>, the key path
// upper-cased with dots as underscores (edge.hub_url → FERRITE_EDGE_HUB_URL).
const EnvPrefix = "FERRITE_"

// envKey is the environment variable for a key path.
func envKey(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// envLeaf is one overridable setting.
type envLeaf struct {
	path string
	v    reflect.Value
	// structured: a list or map of settings (ingest.rules,
	// broker.auth.command_roles...), which a variable cannot express.
	structured bool
}

// envLeaves lists every scalar setting of v (recursively), derived from the
// yaml tags. Lists of sections and maps are not overridable from the
// environment; lists of scalars take comma-separated values.
func envLeaves(v reflect.Value, prefix string, out map[string]envLeaf) {
	t := v.Type()
	for i := range t.NumField() {
		key := yamlKey(t.Field(i))
		if key == "" {
			continue
		}
		fv := v.Field(i)
		path := joinPath(prefix, key)
		ft := fv.Type()
		switch {
		case reflect.PointerTo(ft).Implements(textUnmarshalerType):
		case ft.Kind() == reflect.Struct:
			envLeaves(fv, path, out)
			continue
		case ft.Kind() == reflect.Map, ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out[envKey(path)] = envLeaf{path: path, structured: true}
			continue
		}
		out[envKey(path)] = envLeaf{path: path, v: fv}
	}
}

// EnvVars lists the FERRITE_* variables the configuration understands.
func EnvVars() []string {
	leaves := make(map[string]envLeaf)
	c := DefaultConfig()
	envLeaves(reflect.ValueOf(c).Elem(), "", leaves)
	names := make([]string, 0, len(leaves))
	for k, l := range leaves {
		if !l.structured {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// applyEnv applies FERRITE_* overrides from environ ("KEY=value" entries) and
// returns the names of FERRITE_* variables that match no setting.
func applyEnv(c *Config, environ []string, p *problems) (unknown []string) {
	leaves := make(map[string]envLeaf)
	envLeaves(reflect.ValueOf(c).Elem(), "", leaves)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		leaf, ok := leaves[name]
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		p.envs[leaf.path] = name
		if leaf.structured {
			p.add(leaf.path, "a list or map of settings cannot be set from the environment: set it in the config file")
			continue
		}
		if err := setScalar(leaf.v, value); err != nil {
			p.add(leaf.path, "%v", err)
		}
	}
	sort.Strings(unknown)
	return unknown
}
