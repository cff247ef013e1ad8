package syncer

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A small data-driven test runner in the style of Pebble's (cockroachdb/
// datadriven): a script is a sequence of blocks
//
//	command arg key=value ...
//	----
//	expected output
//
// separated by blank lines; lines starting with # are comments. Run with
// -rewrite to regenerate the expected outputs after a deliberate change
// (then review the diff).

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of data-driven scripts")

type ddCmd struct {
	pos  string // file:line
	cmd  string
	args []string          // positional
	kv   map[string]string // key=value
}

func (c *ddCmd) has(flag string) bool {
	for _, a := range c.args {
		if a == flag {
			return true
		}
	}
	return false
}

func (c *ddCmd) str(t *testing.T, key, def string) string {
	if v, ok := c.kv[key]; ok {
		return v
	}
	return def
}

func (c *ddCmd) u64(t *testing.T, key string, def uint64) uint64 {
	t.Helper()
	v, ok := c.kv[key]
	if !ok {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s: %s=%q: %v", c.pos, key, v, err)
	}
	return n
}

func (c *ddCmd) dur(t *testing.T, key string, def time.Duration) time.Duration {
	t.Helper()
	v, ok := c.kv[key]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %s=%q: %v", c.pos, key, v, err)
	}
	return d
}

type ddBlock struct {
	comment  []string // comment lines just before the command
	cmd      ddCmd
	input    string // the command line as written
	expected string
}

func parseScript(t *testing.T, path string) []ddBlock {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	var blocks []ddBlock
	var comment []string
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			comment = append(comment, line)
			continue
		}
		b := ddBlock{comment: comment, input: line, cmd: parseCmd(fmt.Sprintf("%s:%d", filepath.Base(path), i+1), line)}
		comment = nil
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "----" {
			t.Fatalf("%s: command without ---- separator", b.cmd.pos)
		}
		i += 2
		var out []string
		for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
			out = append(out, lines[i])
		}
		b.expected = strings.Join(out, "\n")
		blocks = append(blocks, b)
	}
	return blocks
}

func parseCmd(pos, line string) ddCmd {
	f := strings.Fields(line)
	c := ddCmd{pos: pos, cmd: f[0], kv: map[string]string{}}
	for _, a := range f[1:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			c.kv[k] = v
		} else {
			c.args = append(c.args, a)
		}
	}
	return c
}

// runScripts runs every script matching pattern; run executes one command
// and returns its output.
func runScripts(t *testing.T, pattern string, newRun func() func(t *testing.T, c *ddCmd) string) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts match %s (%v)", pattern, err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			blocks := parseScript(t, path)
			run := newRun()
			var sb strings.Builder
			failed := false
			for i, b := range blocks {
				got := strings.TrimRight(run(t, &b.cmd), "\n")
				if got != b.expected && !*rewrite {
					t.Errorf("%s: %s\n got:\n%s\nwant:\n%s", b.cmd.pos, b.input, indent(got), indent(b.expected))
					failed = true
				}
				if i > 0 {
					sb.WriteString("\n")
				}
				for _, c := range b.comment {
					sb.WriteString(c + "\n")
				}
				if i == 0 && len(b.comment) > 0 {
					sb.WriteString("\n") // the file's header comment
				}
				fmt.Fprintf(&sb, "%s\n----\n", b.input)
				if got != "" {
					sb.WriteString(got + "\n")
				}
			}
			if *rewrite {
				if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_ = failed
		})
	}
}

func indent(s string) string {
	if s == "" {
		return "  (nothing)"
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

func formatActions(acts []action) string {
	var sb strings.Builder
	for _, a := range acts {
		sb.WriteString(a.String())
		sb.WriteString("\n")
	}
	return sb.String()
}
