package ingest

import "errors"

// Sentinel errors. Parse errors wrap one of the Err*Payload values so that
// callers can classify them with errors.Is; Reason maps them to the metric
// label used by ferrite_ingest_malformed_total.
var (
	// ErrRefused is returned by HandleMessages when the readings could not be
	// made durable (the store refused or failed the write). The broker maps it
	// to MQTT reason code 0x97 (quota exceeded) for MQTT 5 publishers.
	ErrRefused = errors.New("ingest: readings refused")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("ingest: pipeline closed")
	// ErrInvalidRule reports a rule that failed validation.
	ErrInvalidRule = errors.New("ingest: invalid rule")
	// ErrInvalidOptions reports options that failed validation.
	ErrInvalidOptions = errors.New("ingest: invalid options")
	// ErrInvalidSensorID reports an empty, too long or unprintable sensor id.
	ErrInvalidSensorID = errors.New("ingest: invalid sensor id")
	// ErrUnknownSensor is returned for queries about a sensor never seen.
	ErrUnknownSensor = errors.New("ingest: unknown sensor")
	// ErrBucketsNotWritten is returned by Forget when the store does not
	// take the sensor's buckets now (it refuses writes at the Critical
	// level): forgetting would delete the raw readings they are rebuilt
	// from, so nothing is forgotten.
	ErrBucketsNotWritten = errors.New("ingest: buckets not written")

	// ErrEmptyPayload: the payload is empty or only whitespace.
	ErrEmptyPayload = errors.New("ingest: empty payload")
	// ErrBadNumber: the payload or field is not a finite number or ON/OFF/true/false.
	ErrBadNumber = errors.New("ingest: not a number")
	// ErrBadJSON: the payload is not well-formed JSON (or exceeds the nesting limit).
	ErrBadJSON = errors.New("ingest: malformed JSON")
	// ErrNoValue: well-formed payload without any numeric value for the rule.
	ErrNoValue = errors.New("ingest: no value in payload")
	// ErrBadTimestamp: a timestamp field is present but cannot be understood.
	ErrBadTimestamp = errors.New("ingest: bad timestamp")
	// ErrBadSenML: a SenML pack violates RFC 8428 (bad name, wrong field types).
	ErrBadSenML = errors.New("ingest: invalid SenML")
	// ErrTooManyValues: the payload carries more values than MaxValuesPerMessage.
	ErrTooManyValues = errors.New("ingest: too many values in one message")
	// ErrBadUnit: a unit longer than MaxUnitLen bytes.
	ErrBadUnit = errors.New("ingest: unit too long")
)

// Reason returns the short metric label for a parse error: "empty",
// "not_number", "bad_json", "no_value", "bad_timestamp", "bad_senml",
// "too_many_values", "bad_sensor_id", "bad_unit" or "other".
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrEmptyPayload):
		return "empty"
	case errors.Is(err, ErrBadNumber):
		return "not_number"
	case errors.Is(err, ErrBadJSON):
		return "bad_json"
	case errors.Is(err, ErrNoValue):
		return "no_value"
	case errors.Is(err, ErrBadTimestamp):
		return "bad_timestamp"
	case errors.Is(err, ErrBadSenML):
		return "bad_senml"
	case errors.Is(err, ErrTooManyValues):
		return "too_many_values"
	case errors.Is(err, ErrInvalidSensorID):
		return "bad_sensor_id"
	case errors.Is(err, ErrBadUnit):
		return "bad_unit"
	default:
		return "other"
	}
}
