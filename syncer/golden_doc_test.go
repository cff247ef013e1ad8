package syncer

import (
	"os"
	"regexp"
	"testing"
)

// goldenHex returns the hex of the named case from the golden table in
// docs/PROTOCOL.md: the document is the reference, the tests check it.
func goldenHex(t *testing.T, name string) string {
	t.Helper()
	table := protocolTable(t)
	h, ok := table[name]
	if !ok {
		t.Fatalf("docs/PROTOCOL.md has no golden row %q (run with -update and copy the table)", name)
	}
	return h
}

var goldenRow = regexp.MustCompile("(?m)^\\| ([a-z0-9-]+) \\| [A-Za-z]+ \\| `([0-9a-f]+)` \\|$")

func protocolTable(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatalf("read docs/PROTOCOL.md: %v", err)
	}
	out := map[string]string{}
	for _, m := range goldenRow.FindAllStringSubmatch(string(doc), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestProtocolDocHasEveryCase: no stale or missing rows in the document.
func TestProtocolDocHasEveryCase(t *testing.T) {
	table := protocolTable(t)
	names := map[string]bool{}
	for _, c := range goldenCases() {
		names[c.name] = true
		if _, ok := table[c.name]; !ok {
			t.Errorf("docs/PROTOCOL.md lacks golden row %q", c.name)
		}
	}
	for n := range table {
		if !names[n] {
			t.Errorf("docs/PROTOCOL.md has golden row %q that no test checks", n)
		}
	}
}
