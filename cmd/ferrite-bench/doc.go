// Command ferrite-bench is an MQTT load generator for the ferrite gateway
// and, equally, for any MQTT 3.1.1 broker (mosquitto, EMQX, …), so that the
// gateway can be measured side by side with a plain broker in one run.
//
// It opens -publishers connections, each publishing one sensor's payloads
// in the chosen -format (number, json, senml, zigbee2mqtt, esphome,
// tasmota, on the topics of ferrite's shipped rules) at its share of the
// total offered -rate (open loop: the schedule does not slow down when the
// broker does, except at QoS 1 when -inflight messages await their PUBACK)
// for -duration. With -subscribe (default) a subscriber on the same topics
// counts forwarded messages and measures latency: every payload carries its
// send time as its value (ms since the run started, µs precision), so no
// clock outside this process is needed. With -verify it asks a ferrite
// gateway (SENSOR.STATS on $ferrite/cmd) how many readings it ingested.
// With -pid NAME=PID it reports the broker process's CPU seconds (and CPU
// seconds per 100k messages) and RSS from /proc.
//
// Publishers use a minimal built-in MQTT 3.1.1 writer (-client raw) by
// default: on the 2-core development machine it offers about 3× more
// messages per second than paho.mqtt.golang (-client paho), which takes a
// lock, allocates a token and crosses a channel per message.
//
// Results: a table on stdout, and JSON with -json FILE (or -json - ).
// Loss is sent minus delivered within -drain after publishing stopped.
//
// Usage:
//
//	ferrite-bench -broker tcp://127.0.0.1:1883 -publishers 100 -rate 100000 -duration 60s
//	ferrite-bench -qos 1 -publishers 100 -duration 30s -verify
//	ferrite-bench -target ferrite=tcp://127.0.0.1:1883 -pid ferrite=$(pidof ferrite) \
//	              -target mosquitto=tcp://127.0.0.1:1884 -pid mosquitto=$(pidof mosquitto) \
//	              -publishers 100 -rate 100000 -duration 30s -json results.json
//	ferrite-bench -gentle   # demo: a few sensors in every format at 1 Hz
//
// Run ferrite-bench -h for every flag.
package main
