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
//
// Only a separate WAL directory is recorded. The store directory is always
// offered anyway, and recording its own path would bind a copy of it to
// the original: a data directory copied or restored to another path would
// recover the original's later WAL files into itself (its writes after the
// backup, which TestCopiedStoreKeepsItsOwnWAL saw come back) and let
// Pebble delete WAL files the original still needs. Older releases did
// record it; such a record naming a store directory (one with Pebble's
// LOCK file) is ignored.

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
	if prev, err := readWALDir(fs, storePath); err == nil && !isStoreDir(fs, prev) {
		add(prev)
	}
}

// isStoreDir reports whether dir holds a Pebble database (its LOCK file; a
// WAL directory has none).
func isStoreDir(fs vfs.FS, dir string) bool {
	_, err := fs.Stat(fs.PathJoin(dir, "LOCK"))
	return err == nil
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

// recordWALDir remembers the WAL directory now in use (after Open): a
// separate one, or none.
func recordWALDir(fs vfs.FS, storePath, walDir string) error {
	name := fs.PathJoin(storePath, walDirFile)
	if walDir == "" {
		// Pebble flushed what it recovered from a previous directory
		// during Open: nothing is left to recover from it.
		if err := fs.Remove(name); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		return syncDir(fs, storePath)
	}
	if prev, err := readWALDir(fs, storePath); err == nil && prev == walDir {
		return nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
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
	return syncDir(fs, storePath)
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
