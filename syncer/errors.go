package syncer

import "errors"

// Sentinel errors. Callers test them with errors.Is; the package wraps
// them with detail.
var (
	// ErrCorrupt is returned by Decode for bytes that are not a valid
	// message of this protocol version.
	ErrCorrupt = errors.New("syncer: corrupt message")
	// ErrVersion is returned by Decode for a message of another protocol
	// version.
	ErrVersion = errors.New("syncer: unsupported protocol version")
	// ErrInvalidOptions is returned by NewEdge and NewHub for options that
	// cannot work; the message lists every problem.
	ErrInvalidOptions = errors.New("syncer: invalid options")
	// ErrNotRunning is returned by SyncNow when Run is not running.
	ErrNotRunning = errors.New("syncer: not running")
	// ErrNoHub is returned by SyncNow when no hub is configured.
	ErrNoHub = errors.New("syncer: no hub configured")
	// ErrLinkDown is returned by SyncNow when the hub link failed before
	// the pending ops were acknowledged (unreachable broker, ack timeout,
	// lost connection).
	ErrLinkDown = errors.New("syncer: hub link down")
	// ErrHubSilent: the broker link is up but the hub does not answer
	// Hello (it is down or not subscribed); Hello is retried with backoff.
	ErrHubSilent = errors.New("syncer: hub not answering")
	// ErrAckTimeout marks a link as half-open: the hub did not acknowledge
	// within AckTimeout.
	ErrAckTimeout = errors.New("syncer: ack timeout")
	// ErrProtocol is a message that breaks the protocol (wrong node, wrong
	// order); the session is reset.
	ErrProtocol = errors.New("syncer: protocol violation")
)
