package broker

import (
	"errors"
	"fmt"
)

// Sentinel errors of the broker package.
var (
	// ErrPacketRejected is returned to mochi by a guarded connection whose
	// client sent a packet that could not be framed or decoded safely.
	ErrPacketRejected = errors.New("broker: packet rejected by guard")
	// ErrClosed is returned by calls on a closed broker.
	ErrClosed = errors.New("broker: closed")
	// ErrStarted is returned by Start on a broker that was already started.
	ErrStarted = errors.New("broker: already started")
	// ErrInvalidFilter is returned by Handle for a malformed topic filter.
	ErrInvalidFilter = errors.New("broker: invalid topic filter")
	// ErrTooManyConnections is counted when a connection is refused because
	// the listener already holds its maximum of open connections.
	ErrTooManyConnections = errors.New("broker: too many connections")

	// ErrUnknownCommand is returned by the router for a command it does not know.
	ErrUnknownCommand = errors.New("broker: unknown command")
	// ErrWrongArity is returned by the router when a command gets too few or
	// too many arguments.
	ErrWrongArity = errors.New("broker: wrong number of arguments")
	// ErrSyntax is returned by the command parser for a malformed command line.
	ErrSyntax = errors.New("broker: syntax error")
	// ErrBusy is returned by the router when its queue is full.
	ErrBusy = errors.New("broker: command queue full")
	// ErrDuplicateCommand is returned by Register for a name already taken.
	ErrDuplicateCommand = errors.New("broker: command already registered")
)

// MQTT 5 reason codes a Handler may refuse a message with.
const (
	CodeUnspecifiedError      byte = 0x80
	CodeImplementationError   byte = 0x83
	CodeNotAuthorized         byte = 0x87
	CodeTopicNameInvalid      byte = 0x90
	CodePacketTooLarge        byte = 0x95
	CodeQuotaExceeded         byte = 0x97
	CodePayloadFormatInvalid  byte = 0x99
	minimumFailureReasonCode  byte = 0x80
	defaultRejectReasonString      = "message refused"
)

// RejectError is returned by a Handler that refuses a message. MQTT 5
// publishers of QoS 1/2 messages receive Code (for example 0x97 quota
// exceeded) and Reason in their PUBACK/PUBREC. MQTT 3.1.1 has no way to refuse
// a publish: the broker sends no acknowledgement, so the client keeps the
// message and sends it again after it reconnects. Refused QoS 0 messages are
// dropped and counted.
type RejectError struct {
	Code   byte   // an MQTT 5 failure reason code (>= 0x80)
	Reason string // human readable, sent as the Reason String property
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("broker: message rejected (reason code 0x%02x): %s", e.Code, e.Reason)
}

// rejectFor turns a handler error into the RejectError sent to the client.
// Errors that are not a *RejectError are internal failures: the message was
// not stored, so it must not be acknowledged as if it had been.
func rejectFor(err error) *RejectError {
	var re *RejectError
	if errors.As(err, &re) && re.Code >= minimumFailureReasonCode {
		return re
	}
	if re != nil {
		return &RejectError{Code: CodeUnspecifiedError, Reason: re.Reason}
	}
	return &RejectError{Code: CodeUnspecifiedError, Reason: defaultRejectReasonString}
}
