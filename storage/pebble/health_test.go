package pebble

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/tessera"
)

func TestHealthy(t *testing.T) {
	ctx := context.Background()
	signer, _ := testKeys(t)
	dir := filepath.Join(t.TempDir(), "log")
	l := openTestLog(t, Config{Path: dir}, fastOptions(signer))
	defer l.close(t)
	l.appendAll(t, entryData("healthy", 0, 3))
	t.Run("a working store is healthy", func(t *testing.T) {
		if err := l.s.Healthy(ctx); err != nil {
			t.Fatalf("Healthy() = %v", err)
		}
	})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	t.Run("a store whose directory is gone is not, before any write", func(t *testing.T) {
		if err := l.s.Healthy(ctx); err == nil {
			t.Fatal("Healthy() = nil with the database directory removed")
		}
	})
	t.Run("a failed commit keeps it unhealthy after the directory is back", func(t *testing.T) {
		if _, err := l.add(ctx, tessera.NewEntry([]byte("lost")))(); err == nil {
			t.Fatal("an entry was sequenced with the database directory removed")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := l.s.Healthy(ctx); err == nil {
			t.Fatal("Healthy() = nil after a failed commit and no successful one")
		}
	})
}
