package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
	b, err := os.ReadFile(filepath.Join(dir, "store", walDirFile))
	if err != nil || strings.TrimSpace(string(b)) != filepath.Join(dir, "store") {
		t.Fatalf("recorded WAL dir %q, %v", b, err)
	}
}
