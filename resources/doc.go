// Package resources is the edge node's resource monitor: it samples memory,
// storage, CPU, battery and the link to the hub, grades memory, disk and CPU
// into levels with hysteresis, and acts on the levels through small
// interfaces that the store, ingest and syncer implement. It imports no
// project package; the root package wires it.
//
// # Pipeline
//
//	samplers ──Samples──▶ Policy.Evaluate (pure) ──Decision──▶ driver (Monitor)
//	                                                            ├─ state actions, at once
//	                                                            ├─ one-shot actions, action goroutine
//	                                                            └─ snapshot, metrics, OnChange
//
// The Policy holds all the decisions and no I/O: levels, hysteresis, which
// actions, eviction targets, the refusal reason and the sync interval all
// come from injected Samples and are table-tested. The Monitor is a thin
// driver: Run samples every sample_interval, evaluates, applies.
//
// # Samplers
//
//   - Memory: the process RSS (/proc/self/statm), the Go heap and runtime
//     memory (runtime/metrics), the cgroup v1 or v2 memory limit and working
//     set (usage minus inactive file pages) when one is set, and the host's
//     memory (gopsutil) when neither memory_limit nor a cgroup limit is set.
//     The memory percentage is the worst of RSS/memory_limit and
//     working set/cgroup limit.
//   - Disk: the store's own bytes (Options.StorageUsage) against its
//     capacity: the smaller of storage_limit and the store's bytes plus the
//     filesystem's free space (gopsutil disk.Usage of the data dir) above
//     disk_reserve. A small storage_limit and a nearly full flash both count.
//   - CPU: the process's CPU time (getrusage) over the round, in cores,
//     against GOMAXPROCS, which cpu_budget sets (see CPUBudget). CPU has
//     levels and metrics but its level takes no action (evicting and
//     compacting relieve memory and disk, not CPU), so the overall level is
//     the worse of memory and disk. This narrows "overall = max of the
//     resources" in docs/DESIGN.md on purpose.
//   - Battery: /sys/class/power_supply (see powerSupply), charge and whether
//     the device runs on it.
//   - Link: Options.LinkStats (the syncer): connected, RTT, failed rounds.
//
// A sampling round costs about 0.1 ms and a few small file reads
// (BenchmarkSampleRound); limits that are not set cost no reads. A source
// that fails leaves its resource's level as it was, is counted in
// ferrite_resources_sample_errors_total and logged when it starts failing
// and when it recovers, not every round.
//
// # Levels
//
// Normal, Warning, High, Critical at the thresholds of the feature document
// (memory 80/90/95 %, disk 70/85/95 %, overridable). A level is entered on
// the first sample at its threshold and left after hysteresis.samples
// consecutive samples below its threshold minus hysteresis.margin points.
//
// # Actions
//
// Warning: sync now and offload synced raw readings; compact when disk is at
// Warning or above. High: also roll up sensor buckets and switch on high
// compression; evict LRU data (disk at High) or release caches and return
// freed heap to the OS (memory at High), aiming at the resource's Warning
// threshold minus the margin. Critical: also refuse new writes with a reason
// naming the resources and their figures; writes are accepted again when the
// level drops. One-shot actions run when the level rises and every
// action_interval while it holds (compaction only after an eviction or every
// compact_interval, to spare the flash), on their own goroutine in a fixed
// order (sync, roll up, offload, evict, release, compact) so a compaction
// never delays sampling or the write gate. Eviction never removes unsynced
// data: that is the Evictor's contract.
//
// The sync interval follows link quality and battery:
//
//	interval = min(base × link factor × battery factor, max_sync_interval)
//
// with link factors 1 (good or unknown), 2 (degraded: RTT >= 500ms or a
// failed round), 4 (poor: RTT >= 2s, 3 failed rounds, or down) and battery
// factors 1 (no battery, charging or on mains), 2 (discharging), 4 (below
// 30 %), 8 (below 10 %). Worse states apply at once; better ones after
// hysteresis.samples samples, and a battery must be margin points above a
// threshold to leave it.
//
// # Start-up settings
//
// ApplyRuntime sets GOMAXPROCS from cpu_budget and GOMEMLIMIT from
// memory_limit, and returns the store's cache budget (MemoryBudget). These
// are process-wide, so they are not done by New: the root package calls
// ApplyRuntime once, before opening the store.
//
// # Decisions beyond docs/DESIGN.md
//
//   - memory_limit here is a limit on the whole process (RSS), as the issue
//     says, not the preset's store memory budget (2-64 MiB, below what a Go
//     process with a broker and Pebble needs to start): the root package must
//     pass only an explicit edge.resources.memory_limit, and Validate rejects
//     one below MinMemoryLimit (16 MiB).
//   - The overall level is the worse of memory and disk (CPU is shown only).
//   - Memory pressure calls MemoryReleaser (caches), not Evictor: evicting
//     keys from disk frees no memory.
//   - DESIGN.md's SyncThrottle is SyncController (SyncNow + SetInterval).
//
// # Observability
//
// Snapshot (EDGE.RESOURCES through Commands, and the OnChange hook for the
// retained $ferrite/status/<node>/resources topic) reports each resource's
// used, limit, percent and level, the actions in force and the last run of
// each action, the sync interval in force and the sampling cost. Metrics are
// ferrite_resources_* on the injected registerer.
package resources
