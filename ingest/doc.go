// Package ingest turns MQTT sensor messages into stored readings and
// time-bucketed aggregates.
//
// (Full package documentation is being written with the pipeline.)
package ingest
