package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// TLSFiles names the PEM files of a TLS server.
type TLSFiles struct {
	// Cert and Key are the server's certificate chain and private key.
	Cert, Key string
	// ClientCA, if set, is the CA bundle that client certificates are
	// verified against. A client presenting a certificate it does not
	// verify fails the handshake.
	ClientCA string
	// RequireClientCert refuses clients without a verified certificate
	// (needs ClientCA).
	RequireClientCert bool
}

// ServerTLS is a TLS server configuration loaded from TLSFiles that can be
// reloaded (certificate rotation) while listeners use it: each handshake
// takes the configuration in force when it starts. TLS 1.2 is the minimum.
type ServerTLS struct {
	files TLSFiles
	mu    sync.Mutex // serialises Reload
	cur   atomic.Pointer[tls.Config]
	base  *tls.Config
}

// LoadServerTLS loads the files (an error names the file at fault).
func LoadServerTLS(f TLSFiles) (*ServerTLS, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("broker: tls: cert and key are both required")
	}
	if f.RequireClientCert && f.ClientCA == "" {
		return nil, errors.New("broker: tls: require_client_cert needs client_ca")
	}
	s := &ServerTLS{files: f}
	c, err := f.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(c)
	s.base = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load(), nil
		},
	}
	return s, nil
}

func (f TLSFiles) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("broker: tls: loading %s and %s: %w", f.Cert, f.Key, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("broker: tls: client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker: tls: client_ca: no PEM certificate in %s", f.ClientCA)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if f.RequireClientCert {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c, nil
}

// Reload re-reads the files; on error the configuration in force is kept.
func (s *ServerTLS) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.files.load()
	if err != nil {
		return err
	}
	s.cur.Store(c)
	return nil
}

// Config is the configuration for a listener (tls.NewListener, http.Server):
// every handshake uses the files last loaded.
func (s *ServerTLS) Config() *tls.Config { return s.base }

// Files are the files the configuration is loaded from.
func (s *ServerTLS) Files() TLSFiles { return s.files }

// certIdentity is the common name of a verified client certificate ("" if
// the client presented none).
func certIdentity(st *tls.ConnectionState) string {
	if st == nil || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return ""
	}
	return st.VerifiedChains[0][0].Subject.CommonName
}
