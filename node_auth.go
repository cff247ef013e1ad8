package ferrite

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ferrite-edge/ferrite/broker"
)

// security is what the node keeps to reload its credentials on SIGHUP.
type security struct {
	auth      *broker.FileAuth  // nil when Options.Auth replaced it
	brokerTLS *broker.ServerTLS // nil without broker.tls
	httpTLS   *broker.ServerTLS // nil without http.tls
}

// setupSecurity fills the authentication and TLS parts of the broker's
// options: Options.Auth if the embedder gave one, else a FileAuth built
// from broker.auth; the certificates of broker.tls and http.tls.
func (n *Node) setupSecurity(bo *broker.Options, auth broker.Authenticator) error {
	cfg := n.cfg
	if auth == nil {
		ao := cfg.Broker.Auth.AuthOptions(cfg.Sync.TopicPrefix)
		ao.Logger, ao.Registerer = n.log, n.reg
		fa, err := broker.NewFileAuth(ao)
		if err != nil {
			return fmt.Errorf("ferrite: broker.auth: %w", err)
		}
		n.sec.auth, auth = fa, fa
		if p := cfg.Broker.Auth.PasswordFile; p != "" {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o044 != 0 {
				n.log.Warn("password file is readable by other users of the machine: chmod 600 it", "file", p)
			}
		}
	}
	bo.Auth = auth
	var err error
	if n.sec.brokerTLS, err = cfg.Broker.ServerTLS(); err != nil {
		return fmt.Errorf("ferrite: broker.tls: %w", err)
	}
	bo.TLS = n.sec.brokerTLS
	if cfg.HTTP.TLS.Enabled() {
		if n.sec.httpTLS, err = broker.LoadServerTLS(cfg.HTTP.TLS.files()); err != nil {
			return fmt.Errorf("ferrite: http.tls: %w", err)
		}
	}
	return nil
}

// internalCredentials are the user name and password the node's own MQTT
// clients use on its embedded broker ("" when an embedder's Authenticator
// replaced the node's).
func (n *Node) internalCredentials() (user, password string) {
	if n.sec.auth == nil {
		return "", ""
	}
	return broker.InternalUser, n.sec.auth.InternalPassword()
}

// Reload re-reads the password file, the ACL file and the TLS certificates
// (cmd/ferrite calls it on SIGHUP). Connected clients stay connected: their
// next publish, subscription or delivery follows the new rules; clients
// whose user was removed from the password file are disconnected. A file
// that cannot be loaded keeps the previous one in force; the errors are
// returned (and logged).
func (n *Node) Reload(_ context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrNodeClosed
	}
	var errs []error
	if n.sec.auth != nil {
		if err := n.sec.auth.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("broker.auth: %w", err))
		} else if k := n.broker.DisconnectRevoked(); k > 0 {
			n.log.Info("disconnected clients whose user was removed", "clients", k)
		}
	}
	for name, t := range map[string]*broker.ServerTLS{"broker.tls": n.sec.brokerTLS, "http.tls": n.sec.httpTLS} {
		if t == nil {
			continue
		}
		if err := t.Reload(); err != nil {
			n.log.Error("certificate reload failed, the previous one stays in use", "section", name, "error", err)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		} else {
			n.log.Info("certificates reloaded", "section", name, "cert", t.Files().Cert)
		}
	}
	return errors.Join(errs...)
}
