package resources

import (
	"errors"
	"path/filepath"
	"testing"
)

// The fixtures under testdata/cgroup/<case> hold a proc_self_cgroup file and
// a fake cgroupfs mount under fs/, copied from the layouts the kernel,
// systemd and container runtimes produce.
func TestCgroupFixtures(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		dir          string
		version      int
		usage, limit int64
	}{
		{"v2-service", 2, 96 * mib, 256 * mib},    // MemoryMax on the unit; the slice has none
		{"v2-parent", 2, 96 * mib, 128 * mib},     // the slice's limit is the tighter one
		{"v2-container", 2, 112 * mib, 512 * mib}, // cgroup namespace: "0::/"
		{"v2-hostpath", 2, 112 * mib, 512 * mib},  // host path not under the mount: its root
		{"v2-unlimited", 2, 0, 0},
		{"v1", 1, 64 * mib, 256 * mib}, // hierarchical_memory_limit of an ancestor
		{"v1-unlimited", 1, 0, 0},
		{"none", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			base := filepath.Join("testdata", "cgroup", tt.dir)
			cg, err := discoverCgroup(filepath.Join(base, "fs"), filepath.Join(base, "proc_self_cgroup"))
			if err != nil {
				t.Fatal(err)
			}
			if cg.version != tt.version {
				t.Fatalf("version %d, want %d (dirs %v)", cg.version, tt.version, cg.dirs)
			}
			usage, limit, err := cg.read()
			if err != nil || usage != tt.usage || limit != tt.limit {
				t.Fatalf("read() = %d, %d, %v; want %d, %d", usage, limit, err, tt.usage, tt.limit)
			}
		})
	}
}

func TestCgroupMissingProcFile(t *testing.T) {
	cg, err := discoverCgroup(t.TempDir(), filepath.Join(t.TempDir(), "absent"))
	if err != nil || cg.version != 0 {
		t.Fatalf("no /proc/self/cgroup: %+v, %v; want no cgroup, no error", cg, err)
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		in     string
		v2, v1 string
		err    bool
	}{
		{"0::/a/b\n", "/a/b", "", false},
		{"4:memory:/x\n0::/y\n", "/y", "/x", false},
		{"3:cpu,memory,blkio:/z\n", "", "/z", false},
		{"1:name=systemd:/\n", "", "", true},
		{"", "", "", true},
		{"garbage\n0:x\n", "", "", true},
		{"0::relative\n", "", "", true},
		{"0::/with:colon\n", "/with:colon", "", false},
	}
	for _, tt := range tests {
		v2, v1, err := parseProcCgroup([]byte(tt.in))
		if (err != nil) != tt.err || v2 != tt.v2 || v1 != tt.v1 {
			t.Errorf("parseProcCgroup(%q) = %q, %q, %v; want %q, %q, err=%v", tt.in, v2, v1, err, tt.v2, tt.v1, tt.err)
		}
		if err != nil && !errors.Is(err, ErrCgroup) {
			t.Errorf("parseProcCgroup(%q): %v does not wrap ErrCgroup", tt.in, err)
		}
	}
}

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in    string
		limit int64
		ok    bool
		err   bool
	}{
		{"max\n", 0, false, false},
		{"268435456\n", 268435456, true, false},
		{"9223372036854771712\n", 0, false, false},
		{"0\n", 0, false, false},
		{"-1\n", 0, false, true},
		{"lots\n", 0, false, true},
	}
	for _, tt := range tests {
		limit, ok, err := parseLimit([]byte(tt.in))
		if limit != tt.limit || ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("parseLimit(%q) = %d, %v, %v", tt.in, limit, ok, err)
		}
	}
}

func TestUnderRootNeverEscapes(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"/../../etc", "../..", "/a/../../.."} {
		if got := underRoot(root, p); got != root {
			t.Errorf("underRoot(%q) = %q, want the root", p, got)
		}
	}
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte("12:pids:/a\n4:memory:/process_api/abc\n0::/\n"))
	f.Add([]byte("0::/system.slice/ferrite.service\n"))
	f.Add([]byte("::\n:::\n0::/\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v2, v1, err := parseProcCgroup(data)
		if err != nil {
			if !errors.Is(err, ErrCgroup) {
				t.Fatalf("error %v does not wrap ErrCgroup", err)
			}
			return
		}
		if (v2 != "" && v2[0] != '/') || (v1 != "" && v1[0] != '/') {
			t.Fatalf("paths %q %q are not absolute", v2, v1)
		}
	})
}

func FuzzParseMemoryFiles(f *testing.F) {
	f.Add([]byte("inactive_file 16777216\nhierarchical_memory_limit 268435456\n"))
	f.Add([]byte("max\n"))
	f.Add([]byte("18446744073709551615"))
	f.Add([]byte("4096 1024 512 10 0 300 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, key := range []string{"inactive_file", "total_inactive_file", "hierarchical_memory_limit"} {
			if n, ok := parseStatKey(data, key); ok && n < 0 {
				t.Fatalf("parseStatKey(%q) = %d", key, n)
			}
		}
		if limit, ok, err := parseLimit(data); (ok && limit <= 0) || (err != nil && !errors.Is(err, ErrCgroup)) {
			t.Fatalf("parseLimit = %d, %v, %v", limit, ok, err)
		}
		if rss, err := parseStatm(data, 4096); err == nil && rss < 0 {
			t.Fatalf("parseStatm = %d", rss)
		}
	})
}
