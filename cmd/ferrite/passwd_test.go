package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrite-edge/ferrite"
)

func TestPasswdCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")
	run := func(stdin string, args ...string) (int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := runPasswd(args, strings.NewReader(stdin), &out, &errb)
		return code, errb.String()
	}
	verify := func(user, pw string) bool {
		t.Helper()
		pf, err := ferrite.LoadPasswordFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return pf.Verify(user, []byte(pw))
	}
	steps := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"update a missing file", "", []string{"-b", file, "alice", "pw"}, exitFailure, "use -c"},
		{"create", "", []string{"-c", "-b", file, "alice", "s3cret"}, exitOK, ""},
		{"add sha512", "", []string{"-H", "sha512", "-b", file, "bob", "b0b"}, exitOK, ""},
		{"prompt", "typed\ntyped\n", []string{file, "carol"}, exitOK, "Reenter password:"},
		{"prompt mismatch", "one\ntwo\n", []string{file, "dave"}, exitFailure, "do not match"},
		{"empty password", "", []string{"-b", file, "erin", ""}, exitFailure, "empty password"},
		{"colon in user", "", []string{"-b", file, "a:b", "x"}, exitFailure, "':'"},
		{"delete", "", []string{"-D", file, "bob"}, exitOK, ""},
		{"delete missing", "", []string{"-D", file, "bob"}, exitFailure, "not found"},
		{"bad hash", "", []string{"-H", "md5", "-b", file, "x", "y"}, exitUsage, "unknown hash"},
		{"-c with -D", "", []string{"-c", "-D", file, "x"}, exitUsage, "cannot be combined"},
		{"arity", "", []string{"-b", file, "x"}, exitUsage, "wrong number"},
	}
	for _, s := range steps {
		code, stderr := run(s.stdin, s.args...)
		if code != s.code || !strings.Contains(stderr, s.stderr) {
			t.Fatalf("%s: exit %d (want %d), stderr %q", s.name, code, s.code, stderr)
		}
	}
	if !verify("alice", "s3cret") || !verify("carol", "typed") || verify("bob", "b0b") || verify("dave", "one") {
		data, _ := os.ReadFile(file)
		t.Fatalf("file:\n%s", data)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	// -U hashes a plain-text file in place.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("u1:p1\nu2:p2\n"), 0o600)
	if code, stderr := run("", "-U", plain); code != exitOK {
		t.Fatalf("-U: %d %s", code, stderr)
	}
	data, _ := os.ReadFile(plain)
	// Compare whole password fields: a random salt or hash may well contain
	// "p1" (about 1 run in 20 did).
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		user, hash, _ := strings.Cut(line, ":")
		if (user != "u1" && user != "u2") || !strings.HasPrefix(hash, "$7$101$") {
			t.Fatalf("-U wrote:\n%s", data)
		}
	}
	pf, err := ferrite.LoadPasswordFile(plain)
	if err != nil || !pf.Verify("u1", []byte("p1")) || !pf.Verify("u2", []byte("p2")) {
		t.Fatalf("-U wrote (%v):\n%s", err, data)
	}
}
