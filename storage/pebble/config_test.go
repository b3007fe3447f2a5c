package pebble

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" means New succeeds
	}{
		{"zero sizes take the defaults", Config{}, ""},
		{"positive sizes are taken as given", Config{CacheBytes: 1 << 20, PebbleCacheBytes: 8 << 20}, ""},
		{"a missing path is refused", Config{Path: "-"}, "Path is empty"},
		{"a negative edge cache size is refused", Config{CacheBytes: -1}, "CacheBytes is -1"},
		{"a negative Pebble cache size is refused", Config{PebbleCacheBytes: -5}, "PebbleCacheBytes is -5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			cfg := tc.cfg
			switch cfg.Path {
			case "":
				cfg.Path = dir
			case "-":
				cfg.Path = ""
			}
			drv, err := New(ctx, cfg)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("New error %v, want one containing %q", err, tc.want)
				}
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Fatalf("a refused config created %s (%v)", dir, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := drv.(*Storage)
			defer s.Close()
			want := tc.cfg
			if want.CacheBytes == 0 {
				want.CacheBytes = DefaultCacheBytes
			}
			if want.PebbleCacheBytes == 0 {
				want.PebbleCacheBytes = DefaultPebbleCacheBytes
			}
			if s.cfg.CacheBytes != want.CacheBytes || s.cfg.PebbleCacheBytes != want.PebbleCacheBytes || s.cfg.Logger == nil || s.cfg.HTTPClient == nil {
				t.Fatalf("config in use %+v", s.cfg)
			}
		})
	}
}
