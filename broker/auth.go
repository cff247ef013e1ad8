package broker

// ClientInfo describes the client an authentication or authorisation
// decision is about.
type ClientInfo struct {
	ID              string
	Username        string
	Remote          string // remote address
	Listener        string // ListenerTCP, ListenerWebSocket, ListenerTLS or ListenerWebSocketTLS
	ProtocolVersion byte   // 3, 4 (3.1.1) or 5
	// CertIdentity is the common name of the client's verified TLS
	// certificate when Options.IdentityAsUsername made it the client's user
	// name (Username is then the same): the client authenticated with its
	// certificate, not a password. Empty otherwise.
	CertIdentity string
}

// Authenticator decides who may connect and what they may publish or
// subscribe to. It is called on the client's read goroutine, so it must be
// fast and must not block. Implementations must be safe for concurrent use.
type Authenticator interface {
	// Authenticate is called once per CONNECT. Returning false refuses the
	// connection with "bad user name or password".
	Authenticate(c ClientInfo, password []byte) bool
	// Authorize is called for every PUBLISH (write=true), for every
	// subscription filter (write=false) and for every message delivered to a
	// subscriber (write=false, topic is the message's topic). Refused QoS 0
	// publishes are dropped; refused QoS 1/2 publishes get "not authorized"
	// (v5) or a disconnect (3.1.1); refused subscriptions get "not
	// authorized" (v5) or failure 0x80 (3.1.1) in the SUBACK; refused
	// deliveries are skipped.
	Authorize(c ClientInfo, topic string, write bool) bool
}

// SessionIdentifier is implemented by an Authenticator whose clients have
// identities (users): a client id whose session belongs to another identity
// is then refused at CONNECT (see hook.OnConnectAuthenticate). Without it
// every client is one identity and may take over any session.
type SessionIdentifier interface {
	Identity(c ClientInfo) string
}

// CommandAuthorizer is implemented by an Authenticator that also decides
// which $ferrite/cmd commands a client may run (the router asks it after the
// client was allowed to publish to CommandTopic). A non-nil error refuses
// the command; its text is sent as the reply's error.
type CommandAuthorizer interface {
	AuthorizeCommand(c ClientInfo, cmd *Command) error
}

// AllowAll is an Authenticator that lets every client connect and use every
// topic and command (broker.Options's default, for embedding and tests).
type AllowAll struct{}

// Authenticate implements Authenticator.
func (AllowAll) Authenticate(ClientInfo, []byte) bool { return true }

// Authorize implements Authenticator.
func (AllowAll) Authorize(ClientInfo, string, bool) bool { return true }

// Revoker is implemented by an Authenticator that can withdraw the access
// of clients already connected (FileAuth: users removed from the password
// file by a reload). See Broker.DisconnectRevoked.
type Revoker interface {
	Revoked(c ClientInfo) bool
}
