package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The WAL directory may move between opens (edge.queue_path edited): every
// write that lived only in the previous directory's WAL survives.
func TestWALDirMoves(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	walA, walB := filepath.Join(t.TempDir(), "wal-a"), filepath.Join(t.TempDir(), "wal-b")
	keys := []string{}
	for i, walDir := range []string{"", walA, walB, ""} {
		o := testOptions(dir)
		o.WALDir = walDir
		s := openWith(t, o)
		for _, k := range keys {
			if _, err := s.Get(ctx, k); err != nil {
				t.Fatalf("open %d (wal dir %q): %s lost: %v", i, walDir, k, err)
			}
		}
		k := "k" + string(rune('0'+i))
		check(t, s.Set(ctx, k, []byte("v")))
		keys = append(keys, k)
		if walDir != "" {
			logs, _ := filepath.Glob(filepath.Join(walDir, "*.log"))
			if len(logs) == 0 {
				t.Fatalf("no WAL in %s", walDir)
			}
		}
		check(t, s.Close())
	}
	// Back on the store directory: nothing left to record.
	if b, err := os.ReadFile(filepath.Join(dir, "store", walDirFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("recorded WAL dir %q, %v", b, err)
	}
}

// TestCopiedStoreKeepsItsOwnWAL: a data directory copied (or restored from
// a backup) to another path while the original lives on is a store of its
// own. Earlier the store recorded its own path as its WAL directory, so
// the copy recovered the original's later WAL files (the original's writes
// after the copy appeared in it) and Pebble could then delete WAL files
// the original still needed. A record an older release left is ignored.
func TestCopiedStoreKeepsItsOwnWAL(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy-record=%v", legacy), func(t *testing.T) {
			ctx := context.Background()
			dir, cp := t.TempDir(), t.TempDir()
			s := openWith(t, testOptions(dir))
			check(t, s.Set(ctx, "before", []byte("v")))
			check(t, s.Close())
			check(t, os.CopyFS(cp, os.DirFS(dir)))
			if legacy {
				rec := filepath.Join(dir, "store") + "\n"
				check(t, os.WriteFile(filepath.Join(cp, "store", walDirFile), []byte(rec), 0o644))
			}

			s = openWith(t, testOptions(dir))
			check(t, s.Set(ctx, "after", []byte("v"))) // only in the original's WAL
			check(t, s.Close())

			c := openWith(t, testOptions(cp))
			if _, err := c.Get(ctx, "before"); err != nil {
				t.Fatalf("copy lost its own write: %v", err)
			}
			if v, err := c.Get(ctx, "after"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("copy holds the original's later write: %q %v", v, err)
			}
			check(t, c.Close())

			s = openWith(t, testOptions(dir))
			for _, k := range []string{"before", "after"} {
				if _, err := s.Get(ctx, k); err != nil {
					t.Fatalf("original lost %s after the copy opened: %v", k, err)
				}
			}
		})
	}
}
