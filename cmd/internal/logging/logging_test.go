package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/grpclog"
	"k8s.io/klog/v2"
)

// records decodes JSON log lines.
func records(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRepeatLimiter(t *testing.T) {
	type step struct {
		after time.Duration // advance the clock first
		level slog.Level
		msg   string
		attr  string
	}
	tests := []struct {
		name  string
		steps []step
		want  []string // logged messages, with ",repeated=N" when copies were held back
	}{
		{name: "identical errors within the interval are logged once",
			steps: []step{{0, slog.LevelError, "disk full", "a"}, {time.Second, slog.LevelError, "disk full", "a"}, {time.Second, slog.LevelError, "disk full", "a"}},
			want:  []string{"disk full"}},
		{name: "the first copy after the interval says how many were held back",
			steps: []step{{0, slog.LevelWarn, "witness down", "w1"}, {time.Second, slog.LevelWarn, "witness down", "w1"}, {time.Second, slog.LevelWarn, "witness down", "w1"}, {time.Minute, slog.LevelWarn, "witness down", "w1"}},
			want:  []string{"witness down", "witness down,repeated=2"}},
		{name: "errors that differ in an attribute are each logged",
			steps: []step{{0, slog.LevelError, "publish", "size 1"}, {0, slog.LevelError, "publish", "size 2"}},
			want:  []string{"publish", "publish"}},
		{name: "the same message at another level is another message",
			steps: []step{{0, slog.LevelWarn, "m", "x"}, {0, slog.LevelError, "m", "x"}},
			want:  []string{"m", "m"}},
		{name: "info and debug are never held back",
			steps: []step{{0, slog.LevelInfo, "serving", "x"}, {0, slog.LevelInfo, "serving", "x"}, {0, slog.LevelDebug, "tick", "x"}, {0, slog.LevelDebug, "tick", "x"}},
			want:  []string{"serving", "serving", "tick", "tick"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			now := time.Unix(1e9, 0)
			h := NewRepeatLimiter(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}), time.Minute).(*repeatHandler)
			h.state.now = func() time.Time { return now }
			logger := slog.New(h)
			for _, s := range tc.steps {
				now = now.Add(s.after)
				logger.Log(t.Context(), s.level, s.msg, "detail", s.attr)
			}
			var got []string
			for _, r := range records(t, &out) {
				s := r["msg"].(string)
				if n, ok := r[RepeatedKey]; ok {
					s += fmt.Sprintf(",repeated=%v", n)
				}
				got = append(got, s)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("logged %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("attributes added with With are part of what makes messages identical", func(t *testing.T) {
		var out bytes.Buffer
		logger := slog.New(NewRepeatLimiter(slog.NewJSONHandler(&out, nil), time.Minute))
		logger.With("db", "log").Error("compaction failed")
		logger.With("db", "index").Error("compaction failed")
		logger.With("db", "log").Error("compaction failed")
		if n := len(records(t, &out)); n != 2 {
			t.Fatalf("logged %d records, want 2 (one per database):\n%s", n, out.String())
		}
	})
	t.Run("memory stays bounded however many distinct messages come", func(t *testing.T) {
		h := NewRepeatLimiter(slog.NewJSONHandler(&bytes.Buffer{}, nil), time.Minute).(*repeatHandler)
		logger := slog.New(h)
		for i := range 3 * maxRepeatKeys {
			logger.Error("distinct", "i", i)
		}
		h.state.mu.Lock()
		n := len(h.state.seen)
		h.state.mu.Unlock()
		if n > maxRepeatKeys {
			t.Fatalf("the limiter remembers %d messages, more than %d", n, maxRepeatKeys)
		}
	})
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name, level, format string
		wantErr             string
		logs                func()
		want                []string // substrings of the output, in order
		absent              []string
	}{
		{name: "json at warn drops info and writes objects", level: "warn", format: "json",
			logs: func() { slog.Info("quiet"); slog.Warn("loud", "k", 1) },
			want: []string{`"level":"WARN"`, `"msg":"loud"`, `"k":1`}, absent: []string{"quiet"}},
		{name: "text at debug writes key=value lines", level: "DEBUG", format: "text",
			logs: func() { slog.Debug("detail", "k", "v") },
			want: []string{"level=DEBUG", "msg=detail", "k=v"}},
		{name: "the standard log package writes through slog", level: "info", format: "json",
			logs: func() { log.Print("from the log package") },
			want: []string{`"msg":"from the log package"`}},
		{name: "klog warnings keep their level", level: "info", format: "json",
			logs: func() { klog.Warningf("WitnessGateway: failing-open despite error: %v", "boom"); klog.Flush() },
			want: []string{`"level":"WARN"`, `"msg":"WitnessGateway: failing-open despite error: boom"`, `"component":"tessera"`}},
		{name: "klog errors keep their level", level: "info", format: "json",
			logs: func() { klog.Errorf("IntegratedSize: %v", "gone"); klog.Flush() },
			want: []string{`"level":"ERROR"`, `"msg":"IntegratedSize: gone"`}},
		{name: "a first start's missing old checkpoint is not reported as a failure", level: "info", format: "json",
			logs: func() {
				klog.Infof("Failed to fetch old checkpoint: %v", "no checkpoint published yet: file does not exist")
				klog.Flush()
			},
			absent: []string{"Failed to fetch old checkpoint"}},
		{name: "a first start's missing old checkpoint is still there at debug", level: "debug", format: "json",
			logs: func() {
				klog.Infof("Failed to fetch old checkpoint: %v", "no checkpoint published yet: file does not exist")
				klog.Flush()
			},
			want: []string{`"level":"DEBUG"`, `Failed to fetch old checkpoint`}},
		{name: "another failure to fetch the old checkpoint keeps its level", level: "info", format: "json",
			logs: func() { klog.Infof("Failed to fetch old checkpoint: %v", "pebble: closed"); klog.Flush() },
			want: []string{`"level":"INFO"`, `Failed to fetch old checkpoint: pebble: closed`}},
		{name: "gRPC's warnings come through at their level, its info does not", level: "debug", format: "json",
			logs: func() { grpclog.Info("connection bookkeeping"); grpclog.Warningf("transport: %s", "closing") },
			want: []string{`"level":"WARN"`, `"msg":"transport: closing"`, `"component":"grpc"`}, absent: []string{"bookkeeping"}},
		{name: "an unknown level is refused", level: "loud", format: "text", wantErr: `log level "loud"`},
		{name: "an unknown format is refused", level: "info", format: "xml", wantErr: `log format "xml"`},
	}
	defer slog.SetDefault(slog.Default())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := (&Options{Level: tc.level, Format: tc.format}).New(&out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.logs()
			got := out.String()
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %s (in order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			for _, a := range tc.absent {
				if strings.Contains(got, a) {
					t.Fatalf("output has %s:\n%s", a, got)
				}
			}
		})
	}
}
