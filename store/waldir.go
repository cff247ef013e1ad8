package store

import (
	"errors"
	"io"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// The WAL directory (Options.WALDir, the config's edge.queue_path) is where
// every write, and so every op of the offline queue, is first made durable.
// It may be another device than the data (a log partition, a more durable
// flash). Pebble refuses to open when the directory changed and the old one
// may still hold WAL records not yet flushed; the store remembers the last
// directory it used (walDirFile, in the store directory) and offers it, and
// the store directory itself, to Pebble for recovery, so moving
// edge.queue_path between restarts loses nothing.

// walDirFile records the WAL directory of the last successful open.
const walDirFile = "FERRITE-WALDIR"

// walDirs sets po's WAL directory and the directories its WALs may have
// lived in before.
func walDirs(fs vfs.FS, storePath, walDir string, po *pebble.Options) {
	po.WALDir = walDir
	current := walDir
	if current == "" {
		current = storePath
	}
	seen := map[string]bool{current: true}
	add := func(dir string) {
		if dir != "" && !seen[dir] {
			seen[dir] = true
			po.WALRecoveryDirs = append(po.WALRecoveryDirs, wal.Dir{FS: fs, Dirname: dir})
		}
	}
	add(storePath)
	if prev, err := readWALDir(fs, storePath); err == nil {
		add(prev)
	}
}

func readWALDir(fs vfs.FS, storePath string) (string, error) {
	f, err := fs.Open(fs.PathJoin(storePath, walDirFile))
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	return strings.TrimSpace(string(b)), err
}

// recordWALDir remembers the WAL directory now in use (after Open).
func recordWALDir(fs vfs.FS, storePath, walDir string) error {
	if walDir == "" {
		walDir = storePath
	}
	if prev, err := readWALDir(fs, storePath); err == nil && prev == walDir {
		return nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	name := fs.PathJoin(storePath, walDirFile)
	tmp := name + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(walDir + "\n")); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	d, err := fs.OpenDir(storePath)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
