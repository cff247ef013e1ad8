package ferrite

import (
	"github.com/ferrite-edge/ferrite/broker"
)

// BrokerTLSConfig is broker.tls: MQTT over TLS (mqtts) and WebSocket over
// TLS (wss). The TLS listeners run when cert and key are set; TLS 1.2 is the
// minimum. The plain listeners (broker.listen, broker.websocket) keep
// running unless set to "".
type BrokerTLSConfig struct {
	// Listen is the mqtts address (default ":8883"; "" disables it).
	Listen string `yaml:"listen"`
	// WebSocket is the wss address, e.g. ":8084" (default "": off).
	WebSocket string `yaml:"websocket"`
	// Cert and Key are PEM files: the server's certificate chain and key.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA is a PEM bundle that client certificates are verified
	// against; a client presenting one it does not verify is refused.
	ClientCA string `yaml:"client_ca"`
	// RequireClientCert refuses TLS clients without a verified certificate
	// (needs client_ca).
	RequireClientCert bool `yaml:"require_client_cert"`
	// UseIdentityAsUsername makes the common name of a verified client
	// certificate the client's user name: it needs no password, and the
	// ACL and command roles apply to that name (needs client_ca).
	UseIdentityAsUsername bool `yaml:"use_identity_as_username"`
}

// Enabled reports whether the TLS listeners run.
func (t *BrokerTLSConfig) Enabled() bool { return t.Cert != "" && t.Key != "" }

func (t *BrokerTLSConfig) validate(s section) {
	validAddr(s, "listen", t.Listen)
	validAddr(s, "websocket", t.WebSocket)
	if (t.Cert == "") != (t.Key == "") {
		s.add("cert", "cert and key must be set together")
		return
	}
	if !t.Enabled() {
		if t.WebSocket != "" {
			s.add("websocket", "wss needs cert and key")
		}
		if t.ClientCA != "" || t.RequireClientCert || t.UseIdentityAsUsername {
			s.add("client_ca", "client certificates need cert and key (the TLS listeners are off)")
		}
		return
	}
	if t.Listen == "" && t.WebSocket == "" {
		s.add("listen", "cert and key are set but neither listen nor websocket is")
	}
	if (t.RequireClientCert || t.UseIdentityAsUsername) && t.ClientCA == "" {
		s.add("client_ca", "require_client_cert and use_identity_as_username need client_ca")
	}
	if _, err := broker.LoadServerTLS(t.files()); err != nil {
		s.add("cert", "%s", trimBroker(err))
	}
}

func (t *BrokerTLSConfig) files() broker.TLSFiles {
	return broker.TLSFiles{Cert: t.Cert, Key: t.Key, ClientCA: t.ClientCA, RequireClientCert: t.RequireClientCert}
}

// ServerTLSConfig is http.tls: HTTPS for /healthz, /readyz and /metrics
// when cert and key are set (TLS 1.2 minimum).
type ServerTLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA verifies client certificates (a Prometheus scraper's, say);
	// with RequireClientCert, clients without one are refused.
	ClientCA          string `yaml:"client_ca"`
	RequireClientCert bool   `yaml:"require_client_cert"`
}

// Enabled reports whether HTTPS is on.
func (t *ServerTLSConfig) Enabled() bool { return t.Cert != "" && t.Key != "" }

func (t *ServerTLSConfig) validate(s section) {
	switch {
	case (t.Cert == "") != (t.Key == ""):
		s.add("cert", "cert and key must be set together")
	case !t.Enabled():
		if t.ClientCA != "" || t.RequireClientCert {
			s.add("client_ca", "client certificates need cert and key")
		}
	default:
		if _, err := broker.LoadServerTLS(t.files()); err != nil {
			s.add("cert", "%s", trimBroker(err))
		}
	}
}

func (t *ServerTLSConfig) files() broker.TLSFiles {
	return broker.TLSFiles{Cert: t.Cert, Key: t.Key, ClientCA: t.ClientCA, RequireClientCert: t.RequireClientCert}
}
