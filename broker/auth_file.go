package broker

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Command roles (AuthOptions.CommandRoles).
const (
	// RoleAdmin may run every command.
	RoleAdmin = "admin"
	// RoleMonitor may run only read-only commands (EDGE.STATUS, GET, ...).
	RoleMonitor = "monitor"
)

// InternalUser is the user name of the node's own MQTT clients (the hub
// syncer attached to its embedded broker): it authenticates with a random
// password made at start (FileAuth.InternalPassword), never from a file,
// and may use every topic and command.
const InternalUser = "$ferrite-internal"

// ErrNotAuthorized is the reply to a command the client's role does not allow.
var ErrNotAuthorized = errors.New("broker: not authorized")

// AuthOptions configure a FileAuth.
type AuthOptions struct {
	// AllowAnonymous lets clients without a user name connect from anywhere.
	AllowAnonymous bool
	// AnonymousFromLoopback lets clients without a user name connect from
	// a loopback address (127.0.0.0/8, ::1) even when AllowAnonymous is
	// false: local tools work without credentials, remote ones need them.
	AnonymousFromLoopback bool
	// PasswordFile is a mosquitto password file. Without one, user names
	// are not verified: a client sending one is treated as anonymous.
	PasswordFile string
	// ACLFile is a mosquitto acl_file. Without one every accepted client
	// may use every topic (mosquitto's behaviour).
	ACLFile string
	// CommandRoles maps user names to RoleAdmin or RoleMonitor.
	CommandRoles map[string]string
	// DefaultCommandRole is the role of clients allowed to publish to
	// CommandTopic that CommandRoles does not name, anonymous ones included
	// (default RoleAdmin).
	DefaultCommandRole string
	// ProtectedPrefixes are topic prefixes that only ACL rules spelling
	// them out without wildcards grant (the node passes <prefix>/sync and
	// <prefix>/status); CommandTopic is always protected.
	ProtectedPrefixes []string
	// Logger gets refusals and reloads (component=auth); default slog.Default().
	Logger *slog.Logger
	// Registerer receives the auth metrics; default: a private registry.
	Registerer prometheus.Registerer
}

// authFiles is what the files said at the last successful load.
type authFiles struct {
	passwd *PasswordFile // nil without a password file
	acl    *ACL          // nil without an ACL file
}

// FileAuth is the Authenticator of a node: anonymous access rules, a
// mosquitto password file, a mosquitto ACL file and command roles. Reload
// re-reads both files; connected clients are kept and their next publish,
// subscription or delivery is checked against the new rules.
type FileAuth struct {
	opts     AuthOptions
	log      *slog.Logger
	files    atomic.Pointer[authFiles]
	internal []byte // InternalUser's password
	reloadMu sync.Mutex

	connects *prometheus.CounterVec // outcome
	denied   *prometheus.CounterVec // access
	reloads  *prometheus.CounterVec // result
	logDeny  rate.Sometimes
	logConn  rate.Sometimes
}

// Connect outcomes (metric labels).
const (
	authPassword        = "password"
	authCertificate     = "certificate"
	authAnonymous       = "anonymous"
	authInternal        = "internal"
	authBadPassword     = "refused_bad_password"
	authUnknownUser     = "refused_unknown_user"
	authAnonymousRefuse = "refused_anonymous"
)

// NewFileAuth loads the files named in opts. A missing or malformed file is
// an error naming the file and the line.
func NewFileAuth(opts AuthOptions) (*FileAuth, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.DefaultCommandRole == "" {
		opts.DefaultCommandRole = RoleAdmin
	}
	for u, r := range opts.CommandRoles {
		if r != RoleAdmin && r != RoleMonitor {
			return nil, fmt.Errorf("broker: command role %q of %q: want %s or %s", r, u, RoleAdmin, RoleMonitor)
		}
	}
	if r := opts.DefaultCommandRole; r != RoleAdmin && r != RoleMonitor {
		return nil, fmt.Errorf("broker: default command role %q: want %s or %s", r, RoleAdmin, RoleMonitor)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	a := &FileAuth{
		opts:     opts,
		log:      opts.Logger.With("component", "auth"),
		internal: []byte(hex.EncodeToString(secret)),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_auth_connects_total",
			Help: "CONNECT authentications by outcome (password, certificate, anonymous, internal, refused_*).",
		}, []string{"outcome"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_auth_denied_total",
			Help: "ACL and command-role denials by access (write: publish, read: subscription or delivery, command).",
		}, []string{"access"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferrite_auth_reloads_total",
			Help: "Reloads of the password and ACL files by result (ok, error: the previous files stay in force).",
		}, []string{"result"}),
		logDeny: rate.Sometimes{Interval: 10 * time.Second},
		logConn: rate.Sometimes{Interval: 10 * time.Second},
	}
	for _, o := range []string{authPassword, authCertificate, authAnonymous, authInternal, authBadPassword, authUnknownUser, authAnonymousRefuse} {
		a.connects.WithLabelValues(o)
	}
	for _, r := range []string{"ok", "error"} {
		a.reloads.WithLabelValues(r)
	}
	f, err := a.load()
	if err != nil {
		return nil, err
	}
	a.files.Store(f)
	users := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferrite_auth_users",
		Help: "Users in the password file in force.",
	}, func() float64 {
		if p := a.files.Load().passwd; p != nil {
			return float64(p.Len())
		}
		return 0
	})
	for _, c := range []prometheus.Collector{a.connects, a.denied, a.reloads, users} {
		if err := opts.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("broker: auth metrics: %w", err)
		}
	}
	return a, nil
}

func (a *FileAuth) load() (*authFiles, error) {
	f := &authFiles{}
	var err error
	if a.opts.PasswordFile != "" {
		if f.passwd, err = LoadPasswordFile(a.opts.PasswordFile); err != nil {
			return nil, err
		}
	}
	if a.opts.ACLFile != "" {
		acl, err := LoadACLFile(a.opts.ACLFile)
		if err != nil {
			return nil, err
		}
		f.acl = acl.withProtected(append([]string{CommandTopic}, a.opts.ProtectedPrefixes...))
	}
	return f, nil
}

// Reload re-reads the password and ACL files. If either cannot be loaded
// the previous ones stay in force and the error is returned (and logged).
// Connected clients are not disconnected.
func (a *FileAuth) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	f, err := a.load()
	if err != nil {
		a.reloads.WithLabelValues("error").Inc()
		a.log.Error("auth reload failed, previous password and ACL files stay in force", "error", err)
		return err
	}
	a.files.Store(f)
	a.reloads.WithLabelValues("ok").Inc()
	users := 0
	if f.passwd != nil {
		users = f.passwd.Len()
	}
	a.log.Info("auth reloaded", "password_file", a.opts.PasswordFile, "users", users, "acl_file", a.opts.ACLFile)
	return nil
}

// InternalPassword is InternalUser's password for this process.
func (a *FileAuth) InternalPassword() string { return string(a.internal) }

// subject is who the rules see for c: its verified user name, or anonymous.
func (a *FileAuth) subject(f *authFiles, c ClientInfo) aclSubject {
	switch {
	case c.CertIdentity != "":
		return aclSubject{user: c.CertIdentity, clientID: c.ID}
	case c.Username != "" && f.passwd != nil:
		return aclSubject{user: c.Username, clientID: c.ID}
	}
	return aclSubject{anonymous: true, clientID: c.ID}
}

// Identity implements SessionIdentifier: the user the ACL knows the client
// as ("" for anonymous).
func (a *FileAuth) Identity(c ClientInfo) string {
	if s := a.subject(a.files.Load(), c); !s.anonymous {
		return s.user
	}
	return ""
}

// Authenticate implements Authenticator.
func (a *FileAuth) Authenticate(c ClientInfo, password []byte) bool {
	f := a.files.Load()
	outcome := a.authenticate(f, c, password)
	a.connects.WithLabelValues(outcome).Inc()
	if strings.HasPrefix(outcome, "refused") {
		a.logConn.Do(func() {
			a.log.Warn("connection refused", "client", c.ID, "username", c.Username, "remote", c.Remote,
				"listener", c.Listener, "reason", strings.TrimPrefix(outcome, "refused_"))
		})
		return false
	}
	return true
}

func (a *FileAuth) authenticate(f *authFiles, c ClientInfo, password []byte) string {
	switch {
	case c.Username == InternalUser && c.CertIdentity == "":
		if subtle.ConstantTimeCompare(password, a.internal) == 1 {
			return authInternal
		}
		return authBadPassword
	case c.CertIdentity != "":
		return authCertificate
	case c.Username != "" && f.passwd != nil:
		if f.passwd.Verify(c.Username, password) {
			return authPassword
		}
		if !f.passwd.Has(c.Username) {
			return authUnknownUser
		}
		return authBadPassword
	}
	if a.opts.AllowAnonymous || (a.opts.AnonymousFromLoopback && isLoopback(c.Remote)) {
		return authAnonymous
	}
	return authAnonymousRefuse
}

// isLoopback reports whether a remote address "host:port" is a loopback IP.
func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Authorize implements Authenticator.
func (a *FileAuth) Authorize(c ClientInfo, topic string, write bool) bool {
	if c.Username == InternalUser && c.CertIdentity == "" {
		return true // authenticated with the internal password (anything else was refused)
	}
	if !write && strings.HasPrefix(topic, ReplyTopicPrefix) && topic[len(ReplyTopicPrefix):] == c.ID {
		return true // a client may always read its own command replies
	}
	f := a.files.Load()
	if f.acl == nil {
		return true
	}
	s := a.subject(f, c)
	if f.acl.check(s, topic, write) {
		return true
	}
	access := "read"
	if write {
		access = "write"
	}
	a.denied.WithLabelValues(access).Inc()
	a.logDeny.Do(func() {
		a.log.Info("access denied by acl", "client", c.ID, "user", s.user, "topic", topic, "access", access)
	})
	return false
}

// AuthorizeCommand implements CommandAuthorizer: RoleMonitor clients may
// run read-only commands only.
func (a *FileAuth) AuthorizeCommand(c ClientInfo, cmd *Command) error {
	if cmd.ReadOnly || (c.Username == InternalUser && c.CertIdentity == "") {
		return nil
	}
	s := a.subject(a.files.Load(), c)
	role := a.opts.DefaultCommandRole
	if !s.anonymous {
		if r, ok := a.opts.CommandRoles[s.user]; ok {
			role = r
		}
	}
	if role == RoleAdmin {
		return nil
	}
	a.denied.WithLabelValues("command").Inc()
	return fmt.Errorf("%w: %s changes state and needs the %s role (this client has %s)", ErrNotAuthorized, cmd.Name, RoleAdmin, role)
}

// Revoked reports whether a connected client's user is no longer in the
// password file in force (after a Reload): the broker disconnects it.
func (a *FileAuth) Revoked(c ClientInfo) bool {
	if c.CertIdentity != "" || c.Username == "" || c.Username == InternalUser {
		return false
	}
	f := a.files.Load()
	return f.passwd != nil && !f.passwd.Has(c.Username)
}
