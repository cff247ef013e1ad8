package broker

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Hashes written by mosquitto_passwd 2.0.11 (see TestPasswordFileMosquittoPasswd
// for the same check against the installed tool).
const mosquittoFile = `# written by mosquitto_passwd
alice:$7$101$ff6UcJFiUUSLd2vr$2OTzOJAvCgUMhCxmSo1Yde7tV16yJx1u4iWkykfGJDg+gkejU6z6Ok9+x2Pcjn7g9qBTUvAo1JkvUKkKLtxb/g==
bob:$6$ljq+/dZff8eUh4XN$HlY3CpwRXu0QFFdX9DPpghQuKUfIFP9rPsyBsXF1s949SakrHcnDAodRPNpnpGpkxt+bxL75S26DpYyTn+LhpQ==
`

func TestPasswordFileVerifiesMosquittoHashes(t *testing.T) {
	pf, err := ParsePasswordFile(strings.NewReader(mosquittoFile))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "secret", true},
		{"alice", "Secret", false},
		{"alice", "", false},
		{"bob", "hunter2", true},
		{"bob", "hunter", false},
		{"carol", "secret", false},
		{"", "", false},
	}
	for _, c := range cases {
		if got := pf.Verify(c.user, []byte(c.pw)); got != c.ok {
			t.Errorf("Verify(%q, %q) = %v, want %v", c.user, c.pw, got, c.ok)
		}
	}
	if got := pf.Users(); len(got) != 2 || got[0] != "alice" || got[1] != "bob" {
		t.Fatalf("users %v", got)
	}
	// Rewriting keeps comments and unchanged entries byte for byte.
	if !bytes.Equal(pf.Bytes(), []byte(mosquittoFile)) {
		t.Fatalf("rewritten:\n%s", pf.Bytes())
	}
}

func TestPasswordFileSetDelete(t *testing.T) {
	pf := NewPasswordFile()
	for _, alg := range []string{"", HashSHA512PBKDF2, HashSHA512} {
		if err := pf.Set("u-"+alg, "pw "+alg, alg); err != nil {
			t.Fatal(err)
		}
	}
	if err := pf.Set("x:y", "pw", ""); err == nil {
		t.Fatal("user with ':' accepted")
	}
	if err := pf.Set("z", "pw", "md5"); err == nil {
		t.Fatal("unknown algorithm accepted")
	}
	if err := pf.Set("u-", "changed", ""); err != nil {
		t.Fatal(err)
	}
	re, err := ParsePasswordFile(bytes.NewReader(pf.Bytes()))
	if err != nil {
		t.Fatalf("%v\n%s", err, pf.Bytes())
	}
	if !re.Verify("u-", []byte("changed")) || re.Verify("u-", []byte("pw ")) ||
		!re.Verify("u-sha512", []byte("pw sha512")) || !re.Verify("u-sha512-pbkdf2", []byte("pw sha512-pbkdf2")) {
		t.Fatalf("round trip failed:\n%s", pf.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(string(pf.Bytes())), "\n")
	if !strings.HasPrefix(lines[0], "u-:$7$101$") || !strings.HasPrefix(lines[2], "u-sha512:$6$") {
		t.Fatalf("hash formats:\n%s", pf.Bytes())
	}
	// 12-byte salt (16 base64 characters) and a 64-byte hash, as mosquitto.
	parts := strings.Split(strings.TrimPrefix(lines[0], "u-:"), "$")
	if len(parts[3]) != 16 || len(parts[4]) != 88 {
		t.Fatalf("salt/hash lengths %d/%d: %s", len(parts[3]), len(parts[4]), lines[0])
	}
	if !re.Delete("u-sha512") || re.Delete("u-sha512") || re.Has("u-sha512") || !re.Has("u-sha512-pbkdf2") {
		t.Fatal("delete")
	}
	if !re.Verify("u-sha512-pbkdf2", []byte("pw sha512-pbkdf2")) {
		t.Fatal("index broken after delete")
	}
}

func TestParsePasswordFileErrors(t *testing.T) {
	cases := map[string]string{
		"no colon":        "alice\n",
		"empty user":      ":$6$c2FsdA==$" + strings.Repeat("A", 86) + "==\n",
		"plain password":  "alice:secret\n",
		"bad base64":      "alice:$6$!!$abc\n",
		"short hash":      "alice:$6$c2FsdA==$YWJj\n",
		"bad iterations":  "alice:$7$0$c2FsdA==$" + strings.Repeat("A", 86) + "==\n",
		"huge iterations": "alice:$7$999999999$c2FsdA==$" + strings.Repeat("A", 86) + "==\n",
		"duplicate":       strings.Repeat("bob:$6$ljq+/dZff8eUh4XN$HlY3CpwRXu0QFFdX9DPpghQuKUfIFP9rPsyBsXF1s949SakrHcnDAodRPNpnpGpkxt+bxL75S26DpYyTn+LhpQ==\n", 2),
		"unknown scheme":  "alice:$5$abc$def\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePasswordFile(strings.NewReader("# header\n" + in))
			if !errors.Is(err, ErrBadPasswordFile) || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestHashPlainPasswordFile(t *testing.T) {
	in := "# plain\nalice:secret\nbob:$6$ljq+/dZff8eUh4XN$HlY3CpwRXu0QFFdX9DPpghQuKUfIFP9rPsyBsXF1s949SakrHcnDAodRPNpnpGpkxt+bxL75S26DpYyTn+LhpQ==\n\ncarol:with:colons\n"
	pf, err := HashPlainPasswordFile([]byte(in), "")
	if err != nil {
		t.Fatal(err)
	}
	re, err := ParsePasswordFile(bytes.NewReader(pf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !re.Verify("alice", []byte("secret")) || !re.Verify("bob", []byte("hunter2")) || !re.Verify("carol", []byte("with:colons")) {
		t.Fatalf("converted:\n%s", pf.Bytes())
	}
}

// Files written by the installed mosquitto_passwd verify here, and files we
// write are accepted by mosquitto_passwd (it rewrites them on -b without
// complaint and keeps our entries).
func TestPasswordFileMosquittoPasswd(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_passwd"); err != nil {
		t.Skip("mosquitto_passwd not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
		}
	}
	run("-c", "-b", path, "alice", "s3cret pass")
	run("-H", "sha512", "-b", path, "bob", "ünïcode")
	pf, err := LoadPasswordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !pf.Verify("alice", []byte("s3cret pass")) || !pf.Verify("bob", []byte("ünïcode")) || pf.Verify("alice", []byte("s3cret")) {
		t.Fatalf("mosquitto hashes not verified:\n%s", pf.Bytes())
	}
	if err := pf.Set("carol", "ours", ""); err != nil {
		t.Fatal(err)
	}
	if err := pf.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	run("-b", path, "dave", "theirs") // mosquitto_passwd parses our file and rewrites it
	pf, err = LoadPasswordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !pf.Verify("carol", []byte("ours")) || !pf.Verify("dave", []byte("theirs")) || !pf.Verify("alice", []byte("s3cret pass")) {
		t.Fatalf("after mosquitto rewrote our file:\n%s", pf.Bytes())
	}
}

func BenchmarkPasswordVerifyPBKDF2(b *testing.B) {
	pf, err := ParsePasswordFile(strings.NewReader(mosquittoFile))
	if err != nil {
		b.Fatal(err)
	}
	pw := []byte("secret")
	b.ReportAllocs()
	for b.Loop() {
		if !pf.Verify("alice", pw) {
			b.Fatal("no match")
		}
	}
}

func FuzzParsePasswordFile(f *testing.F) {
	f.Add([]byte(mosquittoFile))
	f.Add([]byte("a:$7$101$$\n"))
	f.Add([]byte("a:$7$1$QUFB$" + strings.Repeat("A", 86) + "==\n#x\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pf, err := ParsePasswordFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever parsed renders to a file that parses to the same users.
		re, err := ParsePasswordFile(bytes.NewReader(pf.Bytes()))
		if err != nil {
			t.Fatalf("re-parse: %v\n%q", err, pf.Bytes())
		}
		if a, b := strings.Join(pf.Users(), "\n"), strings.Join(re.Users(), "\n"); a != b {
			t.Fatalf("users %q != %q", a, b)
		}
		for _, u := range pf.Users() {
			_ = pf.Verify(u, []byte("x"))
		}
	})
}
