// Package crdt is Ferrite Edge's replicated data model: hybrid logical
// clocks, dots, version vectors and causal contexts, conflict strategies,
// and the per-key CRDT (Entry) with its deltas and binary encoding.
//
// The package is pure: no I/O, no goroutines, no wall clock (clocks are
// injected). See docs/DESIGN.md, section "crdt — the data model".
package crdt
