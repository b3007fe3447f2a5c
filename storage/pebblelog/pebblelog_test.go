package pebblelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLevels(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for _, tc := range []struct {
		name string
		log  func()
		want string
	}{
		{"informational messages go out at debug level", func() { l.Infof("flushed %d tables", 3) }, `level=DEBUG msg="flushed 3 tables" component=pebble`},
		{"errors go out at error level", func() { l.Errorf("background error: %s", "disk full") }, `level=ERROR msg="background error: disk full" component=pebble`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf.Reset()
			tc.log()
			if !strings.Contains(buf.String(), tc.want) {
				t.Fatalf("logged %q, want %q", buf.String(), tc.want)
			}
		})
	}
	t.Run("a fatal error is logged and then panics", func(t *testing.T) {
		buf.Reset()
		defer func() {
			r := recover()
			if r != "pebble: corrupt manifest" {
				t.Fatalf("recovered %v", r)
			}
			if !strings.Contains(buf.String(), `level=ERROR msg="corrupt manifest" component=pebble fatal=true`) {
				t.Fatalf("logged %q", buf.String())
			}
		}()
		l.Fatalf("corrupt %s", "manifest")
		t.Fatal("Fatalf returned")
	})
}
