// Package ingest turns MQTT sensor messages into stored readings, running
// aggregates and time-bucketed summaries that the syncer replicates.
//
//	broker ──HandleMessages──▶ rules ─▶ parsers ─▶ SensorIngestion ─▶ store (raw ring, durable)
//	                                                  │
//	                                                  ▼
//	                                           EdgeAggregator ─Tick─▶ store (agg/… replicated)
//
// # Rules
//
// A Rule maps an MQTT topic filter to a payload format and a sensor id
// template. The first rule (in configuration order) whose filter matches a
// topic handles the message; a message no rule matches is ignored (it is
// still an ordinary MQTT message for subscribers). Filters use MQTT
// wildcards; a level written {name} matches like '+' and names the level
// for the template. Templates use {N} (topic level N, from 0), {name} and
// {field} (the value's field in multi-value payloads). When a payload
// yields named fields and the template has no {field}, "/<field>" is
// appended, so ids stay unique. Shipped rules (DefaultRules):
//
//	sensors/{id}                       auto         {id}
//	senml/#                            senml        {field} (the SenML resolved name)
//	zigbee2mqtt/{device}               zigbee2mqtt  {device}/{field}
//	{node}/sensor/{name}/state         esphome      {node}/{name}
//	{node}/binary_sensor/{name}/state  esphome      {node}/{name}
//	tele/{device}/SENSOR               tasmota      {device}/{field}
//
// zigbee2mqtt device names containing '/' are not matched by the shipped
// rule (add a rule with zigbee2mqtt/# and a {N}-based template if needed).
//
// # Formats
//
//   - number: a decimal number, or ON/OFF/true/false (any case) as 1/0.
//     No hex, no Inf/NaN.
//
// In every format a value beyond ±MaxMagnitude (1e100; sums of such values
// could overflow) or a unit longer than MaxUnitLen (64 bytes) refuses the
// message, counted under reason not_number or bad_unit.
//   - json: one reading from an object; ValuePath, UnitPath, TimePath are
//     dotted paths (defaults value, unit, and ts|time|timestamp). The value
//     may be a number, a boolean or a string holding a number or ON/OFF.
//   - auto: '{' → json, '[' → senml, else number.
//   - senml: RFC 8428 JSON. Base fields (bn, bt, bu, bv, bs) carry over to
//     later records; name = bn+n (validated per §4.5.1); time = bt+t, and
//     values below 2^28 are relative to the receive time (§4.5.3); value =
//     bv+v, vb as 1/0, or bs+s for sum-only records; vs/vd records are
//     skipped; a must-understand field (name ending in '_') rejects the pack.
//   - zigbee2mqtt: every numeric or boolean leaf (and ON/OFF strings) of
//     the object is a reading named by its path (nested objects joined with
//     '/'); other strings, nulls and arrays are skipped; "last_seen" is the
//     time; units come from zigbee2mqtt's documented exposes.
//   - esphome: as number.
//   - tasmota: as zigbee2mqtt (so AM2301.Temperature becomes
//     <device>/AM2301/Temperature), "Time" is the time, TempUnit/
//     PressureUnit/SpeedUnit give the units of Temperature/DewPoint,
//     Pressure/SeaPressure and Speed fields, Humidity is "%".
//
// A message is taken whole or not at all: any error rejects all of its
// readings. Payload JSON is read by a small validating pull scanner (depth
// ≤ 16, ≤ 256 values per message) that allocates nothing in the steady
// state; every parser is fuzzed (FuzzParsers).
//
// # Timestamps
//
// Numeric timestamps carry no unit; it is inferred from the magnitude:
// below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds,
// else nanoseconds, which reads every date from 1973 on in the right unit;
// a negative number or a date from 2262 on (beyond int64 nanoseconds) is
// refused with the message. Fractions are kept. Text timestamps are RFC
// 3339 (a space may replace the 'T'; 't' and 'z' may be lower case);
// zone-less ones (Tasmota's local "Time") are read in
// Options.Location (default: the gateway's local zone). A timestamp before
// 2000-01-01 (devices without a clock send 0 or their uptime) is replaced
// by the receive time, as is one more than MaxClockSkew (5 min) in the
// future; both are counted in ferrite_ingest_timestamp_fallback_total.
// Missing timestamps take the receive time. Readings are stored with
// millisecond resolution.
//
// # Bad input
//
// A payload a rule matched but could not parse is counted in
// ferrite_ingest_malformed_total{rule,reason}, logged at most a few times
// per 10 s (rate.Sometimes), and passed to Options.DeadLetter (the root
// package republishes it to $ferrite/deadletter). HandleMessages still
// returns nil: the broker delivers the message to subscribers as usual.
//
// # Durability and the hot path
//
// HandleMessages parses a batch with pooled buffers (no allocation per
// value in the steady state) and interns sensor ids and units. Then:
//
//   - QoS 1/2 (the broker hands them over one at a time, on the
//     publisher's goroutine, and acknowledges after HandleMessages
//     returns): the readings are written in one store batch and
//     HandleMessages returns once it is durable under the store's policy,
//     so a PUBACK means the reading survives kill -9. Concurrent
//     publishers share the store's group commit. An error wraps ErrRefused
//     and means nothing of the batch was recorded (the broker maps it to
//     reason code 0x97).
//   - QoS 0: the readings are appended to a bounded queue (QueueSize,
//     default 65536) and HandleMessages returns at once. One writer
//     goroutine commits everything queued as one store batch (at most
//     16384 readings): while it waits for a commit, new readings
//     accumulate, so the batch grows with the commit latency and one fsync
//     covers them all, and parsing (on the broker's worker) overlaps the
//     write. Overflow and store refusals drop readings, counted in
//     ferrite_ingest_readings_dropped_total{reason}. Drain waits until the
//     readings queued before it are written, not for an empty queue, which
//     a steady stream of other sensors never leaves; Close writes what is
//     queued.
//
// # Running aggregates and the registry
//
// SensorIngestion keeps, per sensor, count/sum/min/max since it first
// appeared, the value with the newest timestamp, the unit, and first/last
// receive times. It is checkpointed every CheckpointInterval and on Close,
// in 64 sharded records (so a checkpoint costs at most 64 store commits
// whatever the number of sensors).
// The store counts readings ever appended in the same batch as the
// readings, so after a crash the readings appended since the checkpoint
// are exactly the newest (total - checkpoint count) entries of the raw
// ring and are folded in again: the aggregates are exact after kill -9 as
// long as fewer than max_readings_per_sensor readings of a sensor arrived
// within one checkpoint interval. New sensors beyond MaxSensors are
// dropped and counted.
//
// # Buckets
//
// EdgeAggregator keeps one open bucket per sensor, width and interval;
// intervals are aligned to multiples of the width in UTC (a 1m bucket
// always starts at :00, whatever the first reading's time). Widths are
// whole seconds dividing 24h (default 1m; 1m and 1h together is common).
// The aggregator is a deterministic core: it never reads the clock;
// Pipeline.Tick passes the time (every TickInterval from the pipeline's
// goroutine, or from tests with an injected Clock).
//
// A bucket closes at end + AllowedLateness; readings arriving before that
// land in it (counted as late_in_window). Once closed it is written with
// Store.MergeBucket under agg/<sensor>/<width>/<start-unix-seconds>
// (width as 30s, 1m, 1h…), a crdt aggregate value that the syncer
// replicates and the hub merges per origin. Late readings — for an
// interval already closed — are not dropped: they open a *late partial*
// for the same interval, closed at the next tick and merged into the same
// key; the store adds it into this node's partial of that key (a growing
// per-origin partial with a higher version), so the hub still counts every
// reading exactly once, whatever its age. At most MaxOpenBuckets are open (the
// one due first is closed early, counted) and at most MaxPendingBuckets
// closed buckets wait for the store (when it refuses writes, e.g. at the
// Critical resource level); beyond that the oldest are dropped, counted.
// Flush closes every open bucket now (later readings for those intervals
// become one late partial each, closed when the interval would have closed); DrainPending hands the closed buckets to a caller
// that writes them itself.
//
// A clean stop (Close) writes the open buckets as they are; readings that
// arrive after the restart for their intervals merge into them as late
// partials. After a crash the open buckets are rebuilt from the raw ring:
// each series persists its watermark (every bucket starting before it has
// been written) right after its buckets are written, and readings at or
// after it are replayed (those the ring no longer holds are lost from the
// buckets). A crash between a bucket write and its watermark write
// can count that bucket's readings twice; a late partial pending at a
// crash is lost from the aggregates (its readings stay in the raw ring).
// Store.MarkAggregated tells eviction which raw readings are summarised.
//
// # Commands
//
// Commands(p) returns transport-neutral commands for the broker's command
// router and the Go API:
//
//	SENSOR.STATS <id>                  running aggregates (count, min, max, avg, sum, last, last_ts, unit)
//	SENSOR.LATEST <id> [n]             newest raw readings from the ring, newest first
//	SENSOR.LIST [glob]                 registered sensors
//	SENSOR.BUCKETS <id> [n|from [to]]  stored (replicated, every origin, late partials included) and open buckets
//	SENSOR.FLUSH                       close and write every open bucket now
//	SENSOR.FORGET <id>                 remove a sensor (below); reply: what was removed
//
// # Forgetting a sensor
//
// A retired or renamed device, or a typo in a topic (sensors/tmep-001),
// would otherwise stay registered forever. SENSOR.FORGET <id>
// (Pipeline.Forget) removes its registry entry and running aggregates,
// its checkpoint and its raw readings ring (local keyspace), the last two
// in one durable store batch, so that a crash cannot leave one without the
// other. Its open buckets are closed and written first, as a clean stop
// writes them: they hold readings the aggregates counted. Stored buckets
// (agg/<node>/<id>/...) are replicated history, synced or to be synced:
// they are kept (the reply counts them; DEL deletes them like any key). If
// the store refuses the sensor's buckets (Critical level), SENSOR.FORGET
// fails (ErrBucketsNotWritten) and removes nothing: the raw ring is what
// rebuilds those buckets after a crash or a stop, so deleting it would
// lose readings the aggregates counted. The buckets stay pending, as
// after SENSOR.FLUSH; retry once the store accepts writes. A sensor whose
// buckets are all stored is forgotten at the Critical level too (a
// deletion).
//
// QoS 0 readings queued before the command are stored first, and removed
// with the sensor. A reading racing with it is counted and removed, or
// stored after it: then the sensor is registered anew, as any new sensor,
// counted from zero, with a new ring (none of the old readings come back).
// The reply: {"sensor", "readings" (counted), "raw_readings_dropped",
// "buckets_flushed", "buckets_kept", "bucket_keys", "warning" (if any)};
// an unknown id is an error. OnForget callbacks run before the reply (the
// root package clears the sensor's Home Assistant entity and makes that
// durable); what they could not do is the reply's warning, the sensor
// being forgotten all the same.
package ingest
