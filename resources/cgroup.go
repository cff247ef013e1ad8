package resources

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// ErrCgroup is wrapped by cgroup files the monitor cannot read or parse.
var ErrCgroup = errors.New("resources: cgroup")

// v1Unlimited: cgroup v1 reports "no limit" as PAGE_COUNTER_MAX × page size
// (9223372036854771712 on 4 KiB pages); anything this large is no limit.
const v1Unlimited = 1 << 60

// cgroupMemory reads the memory limit and working set of the process's
// cgroup. Discovery (which version, which directories) happens once; the
// limits themselves are re-read every round, as they can change at run time
// (systemctl set-property, docker update).
type cgroupMemory struct {
	version int      // 0: no cgroup memory controller found, 1 or 2
	dirs    []string // v2: leaf up to the mount root; v1: the leaf
	buf     []byte
	// skip counts rounds left before limits are looked at again after a
	// round found none: an unlimited cgroup then costs no reads per round.
	skip int
}

// discoverCgroup finds the memory cgroup of the process from procSelfCgroup
// (/proc/self/cgroup) under the cgroupfs mount root (/sys/fs/cgroup).
//
// v2 (unified: root/cgroup.controllers exists): the "0::<path>" line; the
// limit is the tightest memory.max from the leaf up to the root. v1 (or
// hybrid: root/memory is a directory): the "<n>:memory:<path>" line; the
// leaf's memory.stat hierarchical_memory_limit already covers its ancestors.
// In a container the path seen in /proc/self/cgroup may be the host's while
// the mount shows the container's own cgroup at its root: a path that does
// not exist under the mount falls back to the mount root.
func discoverCgroup(root, procSelfCgroup string) (cgroupMemory, error) {
	c := cgroupMemory{buf: make([]byte, 8192)}
	root = filepath.Clean(root)
	data, err := os.ReadFile(procSelfCgroup)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("%w: %v", ErrCgroup, err)
	}
	v2Path, v1Path, err := parseProcCgroup(data)
	if err != nil {
		return c, err
	}
	switch {
	case fileExists(filepath.Join(root, "cgroup.controllers")):
		if v2Path == "" {
			return c, nil
		}
		c.version = 2
		leaf := underRoot(root, v2Path)
		for d := leaf; ; d = filepath.Dir(d) {
			c.dirs = append(c.dirs, d)
			if d == root || len(d) <= len(root) {
				break
			}
		}
	case isDir(filepath.Join(root, "memory")):
		if v1Path == "" {
			return c, nil
		}
		c.version = 1
		c.dirs = []string{underRoot(filepath.Join(root, "memory"), v1Path)}
	}
	return c, nil
}

// underRoot joins a cgroup path under a mount root, never escaping it, and
// falls back to the root when the directory does not exist there.
func underRoot(root, path string) string {
	d := filepath.Join(root, filepath.Clean("/"+path))
	if !isDir(d) {
		return filepath.Clean(root)
	}
	return d
}

// parseProcCgroup reads /proc/self/cgroup ("hierarchy-id:controllers:path"
// per line) and returns the unified (v2) path and the v1 memory path.
func parseProcCgroup(data []byte) (v2Path, v1Path string, err error) {
	found := false
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		id, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		ctrls, path, ok := bytes.Cut(rest, []byte{':'})
		if !ok || len(path) == 0 || path[0] != '/' {
			continue
		}
		switch {
		case string(id) == "0" && len(ctrls) == 0:
			v2Path, found = string(path), true
		case hasController(ctrls, "memory"):
			v1Path, found = string(path), true
		}
	}
	if !found {
		return "", "", fmt.Errorf("%w: no unified or memory line in /proc/self/cgroup", ErrCgroup)
	}
	return v2Path, v1Path, nil
}

func hasController(list []byte, name string) bool {
	for c := range bytes.SplitSeq(list, []byte{','}) {
		if string(c) == name {
			return true
		}
	}
	return false
}

// read returns the working set and limit of the tightest limited cgroup, or
// zeros when no limit is set.
func (c *cgroupMemory) read() (usage, limit int64, err error) {
	if c.skip > 0 {
		c.skip--
		return 0, 0, nil
	}
	switch c.version {
	case 2:
		usage, limit, err = c.readV2()
	case 1:
		usage, limit, err = c.readV1()
	}
	if err == nil && limit == 0 {
		c.skip = rescanEvery - 1
	}
	return usage, limit, err
}

func (c *cgroupMemory) readV2() (usage, limit int64, err error) {
	worst := -1.0
	for _, d := range c.dirs {
		lim, ok, err := c.readLimit(filepath.Join(d, "memory.max"))
		if err != nil || !ok {
			continue // the root has no memory.max; "max" is no limit
		}
		cur, err := c.readInt(filepath.Join(d, "memory.current"))
		if err != nil {
			return 0, 0, err
		}
		ws := c.workingSet(cur, filepath.Join(d, "memory.stat"), "inactive_file")
		if r := float64(ws) / float64(lim); r > worst {
			worst, usage, limit = r, ws, lim
		}
	}
	return usage, limit, nil
}

func (c *cgroupMemory) readV1() (usage, limit int64, err error) {
	d := c.dirs[0]
	stat, _ := c.readFile(filepath.Join(d, "memory.stat"))
	hier, hierOK := parseStatKey(stat, "hierarchical_memory_limit")
	inactive, _ := parseStatKey(stat, "total_inactive_file")
	lim, ok, err := c.readLimit(filepath.Join(d, "memory.limit_in_bytes"))
	if err != nil {
		return 0, 0, err
	}
	if hierOK && hier > 0 && hier < v1Unlimited && (!ok || hier < lim) {
		lim, ok = hier, true
	}
	if !ok {
		return 0, 0, nil
	}
	cur, err := c.readInt(filepath.Join(d, "memory.usage_in_bytes"))
	if err != nil {
		return 0, 0, err
	}
	return max(0, cur-inactive), lim, nil
}

// workingSet is usage minus the inactive file pages named by key in the
// stat file (what the kernel reclaims before it hits the limit).
func (c *cgroupMemory) workingSet(cur int64, statPath, key string) int64 {
	stat, err := c.readFile(statPath)
	if err != nil {
		return cur
	}
	inactive, _ := parseStatKey(stat, key)
	return max(0, cur-inactive)
}

// readLimit reads a limit file: ok is false for "max" (v2) or a v1
// unlimited value.
func (c *cgroupMemory) readLimit(path string) (limit int64, ok bool, err error) {
	data, err := c.readFile(path)
	if err != nil {
		return 0, false, err
	}
	return parseLimit(data)
}

// parseLimit reads "max" or a byte count.
func parseLimit(data []byte) (limit int64, ok bool, err error) {
	s := string(bytes.TrimSpace(data))
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w: limit %q: %v", ErrCgroup, s, err)
	}
	if n >= v1Unlimited || n == 0 {
		return 0, false, nil
	}
	return int64(n), true, nil
}

func (c *cgroupMemory) readInt(path string) (int64, error) {
	data, err := c.readFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s: bad value %q", ErrCgroup, path, bytes.TrimSpace(data))
	}
	return n, nil
}

// parseStatKey finds "key value" in a memory.stat file.
func parseStatKey(stat []byte, key string) (int64, bool) {
	for line := range bytes.SplitSeq(stat, []byte{'\n'}) {
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok || string(k) != key {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil || n > 1<<62 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

// readFile reads a small kernel file into the reused buffer; the result is
// valid until the next read.
func (c *cgroupMemory) readFile(path string) ([]byte, error) {
	return readSmall(path, c.buf)
}

// readSmall reads up to len(buf) bytes of a kernel file (sysfs, cgroupfs,
// procfs files are small) without allocating a buffer per read.
func readSmall(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
