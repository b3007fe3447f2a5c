package logging

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/grpclog"
	"k8s.io/klog/v2"
)

var klogOnce sync.Once

// routeKlog sends klog's output (Tessera logs through klog) to logger, one record per message at
// klog's own severity. klog's own slog bridge (klog.SetSlogLogger) reports warnings as info, so
// this reads klog's formatted lines instead: "Lmmdd hh:mm:ss.uuuuuu threadid file:line] message".
func routeKlog(logger *slog.Logger) {
	klogOnce.Do(func() {
		fs := flag.NewFlagSet("klog", flag.ContinueOnError)
		klog.InitFlags(fs)
		// Each message once, at its own severity, and nothing straight to stderr.
		for name, value := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "one_output": "true", "stderrthreshold": "FATAL"} {
			if err := fs.Set(name, value); err != nil {
				panic("klog flag " + name + ": " + err.Error())
			}
		}
	})
	klog.SetOutput(&klogWriter{logger: logger})
}

// klogWriter turns klog's formatted lines into slog records.
type klogWriter struct{ logger *slog.Logger }

func (w *klogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		level, msg, source := parseKlogLine(string(line))
		level = downgrade(level, msg)
		if !w.logger.Enabled(context.Background(), level) {
			continue
		}
		r := slog.NewRecord(time.Now(), level, msg, 0)
		r.AddAttrs(slog.String("component", "tessera"))
		if source != "" {
			r.AddAttrs(slog.String("source", source))
		}
		_ = w.logger.Handler().Handle(context.Background(), r)
	}
	return len(p), nil
}

// parseKlogLine splits a klog line into its level, message and source file:line. A line without
// a klog header (a continuation of a multi-line message) is logged whole at info.
func parseKlogLine(line string) (slog.Level, string, string) {
	level := slog.LevelInfo
	if line == "" {
		return level, line, ""
	}
	switch line[0] {
	case 'W':
		level = slog.LevelWarn
	case 'E', 'F':
		level = slog.LevelError
	case 'I':
	default:
		return level, line, ""
	}
	head, msg, ok := strings.Cut(line, "] ")
	if !ok {
		return slog.LevelInfo, line, ""
	}
	fields := strings.Fields(head)
	source := ""
	if len(fields) > 0 {
		source = fields[len(fields)-1]
	}
	return level, msg, source
}

// firstStart is the message Tessera's checkpoint publisher logs when it finds no earlier
// checkpoint to tell witnesses about (tessera v1.0.4 append_lifecycle.go, CheckpointPublisher).
// On a log's first start that is expected; with the storage's "does not exist" error it is the
// first start, so it is debug, not a reported failure. Any other reason keeps its level.
const firstStart = "Failed to fetch old checkpoint: "

func downgrade(level slog.Level, msg string) slog.Level {
	if strings.HasPrefix(msg, firstStart) && strings.HasSuffix(msg, "file does not exist") {
		return slog.LevelDebug
	}
	return level
}

// routeGRPC sends gRPC's own warnings and errors (grpclog) to logger, tagged component=grpc;
// its info messages, chatty connection bookkeeping, are dropped as gRPC does by default.
func routeGRPC(logger *slog.Logger) {
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard,
		&lineWriter{logger: logger, level: slog.LevelWarn, component: "grpc"},
		&lineWriter{logger: logger, level: slog.LevelError, component: "grpc"}))
}

// lineWriter logs each line written to it as one record at a fixed level, without the date and
// severity prefix grpclog's standard-library loggers put before the message.
type lineWriter struct {
	logger    *slog.Logger
	level     slog.Level
	component string
}

var grpcPrefix = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (INFO|WARNING|ERROR|FATAL): `)

func (w *lineWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		msg := grpcPrefix.ReplaceAllString(string(line), "")
		w.logger.Log(context.Background(), w.level, msg, "component", w.component)
	}
	return len(p), nil
}
