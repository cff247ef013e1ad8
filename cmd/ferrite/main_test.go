package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("node_id: n1\nedge: {preset: iot}\n"), 0o600)
	os.WriteFile(bad, []byte("node_id: n1\nedge:\n  sync_interval: 30x\n  nope: 1\n"), 0o600)
	cases := []struct {
		name   string
		args   []string
		env    []string
		code   int
		stdout string
		stderr string
	}{
		{"version", []string{"--version"}, nil, exitOK, "ferrite ", ""},
		{"help", []string{"-h"}, nil, exitOK, "", "FERRITE_EDGE_HUB_URL"},
		{"unknown flag", []string{"--bogus"}, nil, exitUsage, "", "flag provided but not defined"},
		{"extra argument", []string{"serve"}, nil, exitUsage, "", "unexpected arguments: serve"},
		{"check good", []string{"--check-config", "--config", good}, nil, exitOK, "configuration OK", ""},
		{"check via FERRITE_CONFIG", []string{"--check-config"}, []string{"FERRITE_CONFIG=" + good}, exitOK, "preset: iot", ""},
		{"check shows the preset's limits", []string{"--check-config", "--config", good}, nil, exitOK, `edge.preset "iot" in force: max_keys 1000, compression_level 9`, ""},
		{"check bad", []string{"--check-config", "--config", bad}, nil, exitUsage, "", "line 4: edge.nope: unknown key"},
		{"check env", []string{"--check-config"}, []string{"FERRITE_MODE=moon"}, exitUsage, "", "FERRITE_MODE: mode"},
		{"typo warning", []string{"--check-config"}, []string{"FERRITE_NODEID=x"}, exitOK, "", "FERRITE_NODEID matches no config key"},
		{"no secrets printed", []string{"--check-config"}, []string{"FERRITE_SYNC_PASSWORD=s3cret"}, exitOK, "password: (redacted)", ""},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, nil, exitUsage, "", "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, tc.env, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
		})
	}
}

// The effective configuration --check-config prints is a config file that
// reads back to the same configuration (the shipped ingest rules included).
func TestCheckConfigOutputReadsBack(t *testing.T) {
	dir := t.TempDir()
	eff := filepath.Join(dir, "effective.yaml")
	var out, errb bytes.Buffer
	if code := run([]string{"--check-config", "--config", "../../configs/edge.yaml"}, nil, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	first := out.String()
	if !strings.Contains(first, "topic: sensors/{id}") {
		t.Fatalf("the effective config does not show the shipped ingest rules:\n%s", first)
	}
	if err := os.WriteFile(eff, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"--check-config", "--config", eff}, nil, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	strip := func(s string) string { return s[strings.Index(s, "\n")+1:] } // the "# configuration OK (path)" line
	if strip(out.String()) != strip(first) {
		t.Fatalf("read back differs:\n%s\nwant:\n%s", out.String(), first)
	}
}
