package broker

// ClientInfo describes the client an authentication or authorisation
// decision is about.
type ClientInfo struct {
	ID              string
	Username        string
	Remote          string // remote address
	Listener        string // "tcp" or "ws"
	ProtocolVersion byte   // 3, 4 (3.1.1) or 5
}

// Authenticator decides who may connect and what they may publish or
// subscribe to. It is called on the client's read goroutine, so it must be
// fast and must not block. Implementations must be safe for concurrent use.
type Authenticator interface {
	// Authenticate is called once per CONNECT. Returning false refuses the
	// connection with "bad user name or password".
	Authenticate(c ClientInfo, password []byte) bool
	// Authorize is called for every PUBLISH (write=true) and every
	// subscription (write=false). Refused QoS 0 publishes are dropped; refused
	// QoS 1/2 publishes get "not authorized" (v5) or a disconnect (3.1.1).
	Authorize(c ClientInfo, topic string, write bool) bool
}

// AllowAll is the Authenticator used until the security issue lands: every
// client may connect and use every topic.
type AllowAll struct{}

// Authenticate implements Authenticator.
func (AllowAll) Authenticate(ClientInfo, []byte) bool { return true }

// Authorize implements Authenticator.
func (AllowAll) Authorize(ClientInfo, string, bool) bool { return true }
