package ferrite

import (
	"sort"
	"strings"

	"github.com/ferrite-edge/ferrite/broker"
)

// AuthConfig is broker.auth: who may connect and what they may do. The
// files are mosquitto's, so a site moving from mosquitto keeps them
// (docs/SECURITY.md).
type AuthConfig struct {
	// AllowAnonymous accepts clients without a user name from anywhere
	// (default false; configs/demo.yaml turns it on).
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// AnonymousFromLoopback accepts clients without a user name when they
	// connect from 127.0.0.0/8 or ::1, even with allow_anonymous false
	// (default true): tools on the gateway itself work without credentials,
	// remote clients need a password or a client certificate.
	AnonymousFromLoopback bool `yaml:"anonymous_from_loopback"`
	// PasswordFile is a mosquitto password file (ferrite passwd or
	// mosquitto_passwd write it). Without one, user names are not verified
	// and clients sending one are anonymous.
	PasswordFile string `yaml:"password_file"`
	// ACLFile is a mosquitto acl_file. Without one every accepted client may
	// use every topic and command.
	ACLFile string `yaml:"acl_file"`
	// CommandRoles maps user names to a command role: admin (every command)
	// or monitor (read-only commands such as EDGE.STATUS and GET).
	CommandRoles map[string]string `yaml:"command_roles,omitempty"`
	// DefaultCommandRole is the role of clients the ACL lets publish to
	// $ferrite/cmd that command_roles does not name (default admin).
	DefaultCommandRole string `yaml:"default_command_role"`
}

func (a *AuthConfig) defaults() {
	*a = AuthConfig{AnonymousFromLoopback: true, DefaultCommandRole: broker.RoleAdmin}
}

func (a *AuthConfig) validate(s section) {
	roles := []string{broker.RoleAdmin, broker.RoleMonitor}
	s.oneOf("default_command_role", a.DefaultCommandRole, roles...)
	users := make([]string, 0, len(a.CommandRoles))
	for u := range a.CommandRoles {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		s.in("command_roles").oneOf(u, a.CommandRoles[u], roles...)
	}
	if a.PasswordFile != "" {
		if _, err := broker.LoadPasswordFile(a.PasswordFile); err != nil {
			s.add("password_file", "%s", trimBroker(err))
		}
	}
	if a.ACLFile != "" {
		if _, err := broker.LoadACLFile(a.ACLFile); err != nil {
			s.add("acl_file", "%s", trimBroker(err))
		}
	}
}

func trimBroker(err error) string {
	return strings.ReplaceAll(err.Error(), "broker: ", "")
}

// AuthOptions maps broker.auth onto the broker's FileAuth options (Logger
// and Registerer are the caller's). syncPrefix is sync.topic_prefix: its
// sync and status topics are only granted by ACL rules naming them.
func (a *AuthConfig) AuthOptions(syncPrefix string) broker.AuthOptions {
	return broker.AuthOptions{
		AllowAnonymous:        a.AllowAnonymous,
		AnonymousFromLoopback: a.AnonymousFromLoopback,
		PasswordFile:          a.PasswordFile,
		ACLFile:               a.ACLFile,
		CommandRoles:          a.CommandRoles,
		DefaultCommandRole:    a.DefaultCommandRole,
		ProtectedPrefixes:     []string{syncPrefix + "/sync", syncPrefix + "/status"},
	}
}

// Password files, for `ferrite passwd` (cmd/ferrite imports only this
// package): the broker's mosquitto-compatible implementation.
type PasswordFile = broker.PasswordFile

// Password file functions and hash algorithms (see package broker).
var (
	NewPasswordFile       = broker.NewPasswordFile
	LoadPasswordFile      = broker.LoadPasswordFile
	HashPlainPasswordFile = broker.HashPlainPasswordFile
)

// Hash algorithms of `ferrite passwd -H`.
const (
	HashSHA512       = broker.HashSHA512
	HashSHA512PBKDF2 = broker.HashSHA512PBKDF2
)
