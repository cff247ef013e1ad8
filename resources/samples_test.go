package resources

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestMemoryUsage(t *testing.T) {
	tests := []struct {
		name    string
		m       MemorySample
		percent float64
		source  string
	}{
		{"rss against memory_limit", MemorySample{RSS: 50, Limit: 100}, 50, "rss/memory_limit"},
		{"cgroup tighter", MemorySample{RSS: 50, Limit: 100, CgroupUsage: 90, CgroupLimit: 100}, 90, "cgroup"},
		{"memory_limit tighter", MemorySample{RSS: 95, Limit: 100, CgroupUsage: 100, CgroupLimit: 1000}, 95, "rss/memory_limit"},
		{"cgroup alone", MemorySample{RSS: 50, CgroupUsage: 30, CgroupLimit: 120}, 25, "cgroup"},
		{"host when no limit", MemorySample{RSS: 50, HostUsed: 600, HostTotal: 1000}, 60, "host"},
		{"host ignored under a limit", MemorySample{RSS: 10, Limit: 100, HostUsed: 900, HostTotal: 1000}, 10, "rss/memory_limit"},
	}
	for _, tt := range tests {
		u, err := tt.m.Usage()
		if err != nil || u.Percent != tt.percent || u.Source != tt.source {
			t.Errorf("%s: %+v, %v; want %v %% by %s", tt.name, u, err, tt.percent, tt.source)
		}
	}
	if _, err := (MemorySample{RSS: 5}).Usage(); !errors.Is(err, ErrNotSampled) {
		t.Errorf("no limit at all: err %v, want ErrNotSampled", err)
	}
	boom := errors.New("boom")
	if _, err := (MemorySample{RSS: 5, Limit: 10, Err: boom}).Usage(); err != boom {
		t.Errorf("sample error not returned: %v", err)
	}
}

func TestDiskUsage(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name    string
		d       DiskSample
		used    float64
		limit   float64
		percent float64
		source  string
	}{
		{"storage_limit binds", DiskSample{StoreBytes: 4 * mib, StoreKnown: true, StorageLimit: 5 * mib, FSTotal: 100 * mib, FSFree: 50 * mib}, 4 * mib, 5 * mib, 80, "storage_limit"},
		{"filesystem binds", DiskSample{StoreBytes: 4 * mib, StoreKnown: true, StorageLimit: 50 * mib, FSTotal: 100 * mib, FSFree: 1 * mib}, 4 * mib, 5 * mib, 80, "filesystem"},
		{"reserve kept out", DiskSample{StoreBytes: 4 * mib, StoreKnown: true, FSTotal: 100 * mib, FSFree: 17 * mib, Reserve: 16 * mib}, 4 * mib, 5 * mib, 80, "filesystem"},
		{"free below reserve: full", DiskSample{StoreBytes: 4 * mib, StoreKnown: true, FSTotal: 100 * mib, FSFree: 1 * mib, Reserve: 16 * mib}, 4 * mib, 4 * mib, 100, "filesystem"},
		{"no filesystem figures", DiskSample{StoreBytes: 1 * mib, StoreKnown: true, StorageLimit: 4 * mib}, 1 * mib, 4 * mib, 25, "storage_limit"},
		{"no store figure: filesystem use", DiskSample{FSTotal: 100 * mib, FSFree: 30 * mib}, 70 * mib, 100 * mib, 70, "filesystem"},
		{"empty store, full disk", DiskSample{StoreKnown: true, FSTotal: 100 * mib}, 0, 0, 100, "filesystem"},
	}
	for _, tt := range tests {
		u, err := tt.d.Usage()
		if err != nil || u.Used != tt.used || u.Limit != tt.limit || u.Percent != tt.percent || u.Source != tt.source {
			t.Errorf("%s: %+v, %v; want %v of %v = %v %% by %s", tt.name, u, err, tt.used, tt.limit, tt.percent, tt.source)
		}
	}
	if _, err := (DiskSample{StoreBytes: 5, StoreKnown: true}).Usage(); !errors.Is(err, ErrNotSampled) {
		t.Errorf("store without any limit: %v, want ErrNotSampled", err)
	}
	if _, err := (DiskSample{}).Usage(); !errors.Is(err, ErrNotSampled) {
		t.Errorf("nothing known: %v, want ErrNotSampled", err)
	}
}

func TestCPUUsage(t *testing.T) {
	u, err := CPUSample{Seconds: 1.5, Window: 2 * time.Second, Procs: 2}.Usage()
	if err != nil || u.Used != 0.75 || u.Limit != 2 || math.Abs(u.Percent-37.5) > 1e-9 {
		t.Fatalf("usage %+v, %v; want 0.75 of 2 cores, 37.5 %%", u, err)
	}
	if _, err := (CPUSample{Procs: 2}).Usage(); !errors.Is(err, ErrNotSampled) {
		t.Fatalf("no window: %v", err)
	}
}
