package broker

import (
	"bufio"
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Password files are mosquitto's: one "username:hash" per line, where hash
// is what mosquitto_passwd writes:
//
//	$6$<salt>$<hash>               salted SHA-512: SHA512(password ‖ salt)
//	$7$<iterations>$<salt>$<hash>  PBKDF2-HMAC-SHA512, 64-byte key
//
// with salt and hash in standard base64 (padded). mosquitto_passwd 2.x
// writes $7$ with 101 iterations and a 12-byte salt; so does
// PasswordFile.Set. Blank lines and lines starting with '#' are ignored
// (and kept when the file is rewritten).

// Hash algorithms of a password file entry.
const (
	HashSHA512       = "sha512"        // $6$, mosquitto 1.x
	HashSHA512PBKDF2 = "sha512-pbkdf2" // $7$, mosquitto 2.x (default)
)

const (
	passwdSaltLen       = 12
	passwdHashLen       = 64 // SHA-512 output, also the PBKDF2 key length mosquitto uses
	passwdIterations    = 101
	passwdMaxIterations = 10_000_000 // refuse files that would stall every CONNECT
	passwdMaxLine       = 64 << 10
)

// ErrBadPasswordFile wraps every error in a password file's content.
var ErrBadPasswordFile = errors.New("broker: bad password file")

// passwdHash is one decoded hash.
type passwdHash struct {
	pbkdf2     bool
	iterations int
	salt, hash []byte
}

// passwdLine is one line of a password file: an entry or a kept line
// (comment or blank) when user is "".
type passwdLine struct {
	user string
	hash *passwdHash // nil for kept lines
	text string      // the line as read, for kept lines and unchanged entries
}

// PasswordFile is a mosquitto password file in memory. Its methods are safe
// for concurrent use.
type PasswordFile struct {
	mu    sync.RWMutex
	lines []passwdLine
	index map[string]int // user → index in lines
}

// NewPasswordFile returns an empty password file.
func NewPasswordFile() *PasswordFile {
	return &PasswordFile{index: make(map[string]int)}
}

// LoadPasswordFile reads and parses the password file at path.
func LoadPasswordFile(path string) (*PasswordFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("broker: password file: %w", err)
	}
	defer f.Close()
	pf, err := ParsePasswordFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pf, nil
}

// ParsePasswordFile parses a password file. Every malformed line is an
// error naming its line number; a user listed twice is an error too
// (mosquitto would silently use one of them).
func ParsePasswordFile(r io.Reader) (*PasswordFile, error) {
	pf := NewPasswordFile()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), passwdMaxLine)
	var errs []error
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		line := strings.TrimRight(text, " \t\r")
		if line == "" || line[0] == '#' {
			pf.lines = append(pf.lines, passwdLine{text: text})
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok {
			errs = append(errs, fmt.Errorf("line %d: want username:hash", n))
			continue
		}
		if err := validUsername(user); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		h, err := parsePasswdHash(hash)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: user %q: %w", n, user, err))
			continue
		}
		if _, dup := pf.index[user]; dup {
			errs = append(errs, fmt.Errorf("line %d: user %q listed twice", n, user))
			continue
		}
		pf.index[user] = len(pf.lines)
		pf.lines = append(pf.lines, passwdLine{user: user, hash: h, text: line})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line %d: longer than %d bytes", n+1, passwdMaxLine)
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrBadPasswordFile, errors.Join(errs...))
	}
	return pf, nil
}

// validUsername reports a user name a password file cannot hold.
func validUsername(u string) error {
	switch {
	case u == "":
		return errors.New("empty username")
	case strings.ContainsAny(u, ":\n\r\x00"):
		return fmt.Errorf("username %q contains ':', a newline or NUL", u)
	case len(u) > 65535:
		return errors.New("username longer than 65535 bytes")
	}
	return nil
}

func parsePasswdHash(s string) (*passwdHash, error) {
	parts := strings.Split(s, "$")
	// "$6$salt$hash" → ["", "6", salt, hash]; "$7$it$salt$hash" → 5 parts.
	h := &passwdHash{}
	switch {
	case len(parts) == 4 && parts[0] == "" && parts[1] == "6":
	case len(parts) == 5 && parts[0] == "" && parts[1] == "7":
		it, err := strconv.Atoi(parts[2])
		if err != nil || it < 1 || it > passwdMaxIterations {
			return nil, fmt.Errorf("bad iteration count %q", parts[2])
		}
		h.pbkdf2, h.iterations = true, it
		parts = append(parts[:2], parts[3:]...)
	default:
		return nil, errors.New("not a $6$ or $7$ hash (plain-text passwords must be hashed: ferrite passwd -U FILE)")
	}
	var err error
	if h.salt, err = base64.StdEncoding.DecodeString(parts[2]); err != nil || len(h.salt) == 0 {
		return nil, errors.New("bad salt")
	}
	if h.hash, err = base64.StdEncoding.DecodeString(parts[3]); err != nil || len(h.hash) != passwdHashLen {
		return nil, errors.New("bad hash")
	}
	return h, nil
}

func (h *passwdHash) String() string {
	b64 := base64.StdEncoding.EncodeToString
	if h.pbkdf2 {
		return fmt.Sprintf("$7$%d$%s$%s", h.iterations, b64(h.salt), b64(h.hash))
	}
	return fmt.Sprintf("$6$%s$%s", b64(h.salt), b64(h.hash))
}

// compute hashes password with h's algorithm, salt and iterations.
func (h *passwdHash) compute(password []byte) []byte {
	if h.pbkdf2 {
		// crypto/pbkdf2 only fails in FIPS-140-only mode for short keys or
		// salts; a nil result then never matches.
		k, err := pbkdf2.Key(sha512.New, string(password), h.salt, h.iterations, passwdHashLen)
		if err != nil {
			return nil
		}
		return k
	}
	d := sha512.New()
	d.Write(password)
	d.Write(h.salt)
	return d.Sum(nil)
}

func (h *passwdHash) matches(password []byte) bool {
	got := h.compute(password)
	return got != nil && subtle.ConstantTimeCompare(got, h.hash) == 1
}

// newPasswdHash hashes password with a fresh random salt.
func newPasswdHash(password, algorithm string) (*passwdHash, error) {
	h := &passwdHash{salt: make([]byte, passwdSaltLen)}
	switch algorithm {
	case "", HashSHA512PBKDF2:
		h.pbkdf2, h.iterations = true, passwdIterations
	case HashSHA512:
	default:
		return nil, fmt.Errorf("broker: unknown hash algorithm %q (want %s or %s)", algorithm, HashSHA512PBKDF2, HashSHA512)
	}
	if _, err := rand.Read(h.salt); err != nil {
		return nil, err
	}
	h.hash = h.compute([]byte(password))
	if h.hash == nil {
		return nil, errors.New("broker: pbkdf2 refused the password (FIPS mode?)")
	}
	return h, nil
}

// HashPassword returns the password file hash of password: "$7$101$salt$hash"
// for HashSHA512PBKDF2 (or ""), "$6$salt$hash" for HashSHA512.
func HashPassword(password, algorithm string) (string, error) {
	h, err := newPasswdHash(password, algorithm)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// dummyHash is checked for unknown users so that a refusal takes as long
// for a user that does not exist as for a wrong password.
var dummyHash = sync.OnceValue(func() *passwdHash {
	h, _ := newPasswdHash("", HashSHA512PBKDF2)
	return h
})

// Verify reports whether password is user's password.
func (pf *PasswordFile) Verify(user string, password []byte) bool {
	pf.mu.RLock()
	i, ok := pf.index[user]
	var h *passwdHash
	if ok {
		h = pf.lines[i].hash
	}
	pf.mu.RUnlock()
	if !ok {
		if d := dummyHash(); d != nil {
			d.matches(password)
		}
		return false
	}
	return h.matches(password)
}

// Has reports whether user has an entry.
func (pf *PasswordFile) Has(user string) bool {
	pf.mu.RLock()
	defer pf.mu.RUnlock()
	_, ok := pf.index[user]
	return ok
}

// Len is the number of users.
func (pf *PasswordFile) Len() int {
	pf.mu.RLock()
	defer pf.mu.RUnlock()
	return len(pf.index)
}

// Users lists the users in file order.
func (pf *PasswordFile) Users() []string {
	pf.mu.RLock()
	defer pf.mu.RUnlock()
	out := make([]string, 0, len(pf.index))
	for _, l := range pf.lines {
		if l.user != "" {
			out = append(out, l.user)
		}
	}
	return out
}

// Set adds user or replaces its password, hashed with algorithm
// (HashSHA512PBKDF2 when "").
func (pf *PasswordFile) Set(user, password, algorithm string) error {
	if err := validUsername(user); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	h, err := newPasswdHash(password, algorithm)
	if err != nil {
		return err
	}
	pf.mu.Lock()
	defer pf.mu.Unlock()
	l := passwdLine{user: user, hash: h, text: user + ":" + h.String()}
	if i, ok := pf.index[user]; ok {
		pf.lines[i] = l
		return nil
	}
	pf.index[user] = len(pf.lines)
	pf.lines = append(pf.lines, l)
	return nil
}

// Delete removes user; false if it had no entry.
func (pf *PasswordFile) Delete(user string) bool {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	i, ok := pf.index[user]
	if !ok {
		return false
	}
	pf.lines = append(pf.lines[:i], pf.lines[i+1:]...)
	delete(pf.index, user)
	for u, j := range pf.index {
		if j > i {
			pf.index[u] = j - 1
		}
	}
	return true
}

// Bytes renders the file: comments and blank lines kept, one entry per line.
func (pf *PasswordFile) Bytes() []byte {
	pf.mu.RLock()
	defer pf.mu.RUnlock()
	var b bytes.Buffer
	for _, l := range pf.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Save writes the file atomically (a temporary file in the same directory,
// fsynced, renamed over path) with mode 0600, so a reader (a broker
// reloading on SIGHUP) never sees half a file.
func (pf *PasswordFile) Save(path string) error {
	return writeFileAtomic(path, pf.Bytes(), 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// HashPlainPasswordFile converts a plain-text password file ("user:password"
// lines) to hashed entries, as mosquitto_passwd -U does. Lines that already
// hold a $6$/$7$ hash are left alone (mosquitto would hash them again).
func HashPlainPasswordFile(data []byte, algorithm string) (*PasswordFile, error) {
	pf := NewPasswordFile()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), passwdMaxLine)
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		line := strings.TrimRight(text, "\r")
		if strings.TrimSpace(line) == "" || line[0] == '#' {
			pf.lines = append(pf.lines, passwdLine{text: text})
			continue
		}
		user, pw, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: want username:password", ErrBadPasswordFile, n)
		}
		if pf.Has(user) {
			return nil, fmt.Errorf("%w: line %d: user %q listed twice", ErrBadPasswordFile, n, user)
		}
		if h, err := parsePasswdHash(pw); err == nil {
			pf.index[user] = len(pf.lines)
			pf.lines = append(pf.lines, passwdLine{user: user, hash: h, text: line})
			continue
		}
		if err := pf.Set(user, pw, algorithm); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPasswordFile, err)
	}
	return pf, nil
}
