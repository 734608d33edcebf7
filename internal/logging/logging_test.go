package logging_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/firstunicorn/messagekit-go/internal/logging"
)

// TestParseLevel pins the accepted LOG_LEVEL names; anything else must fail
// so that a typo is a start-up error, not a silently different level.
func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{in: "debug", want: slog.LevelDebug},
		{in: "INFO", want: slog.LevelInfo},
		{in: "warn", want: slog.LevelWarn},
		{in: "Warning", want: slog.LevelWarn},
		{in: "error", want: slog.LevelError},
		{in: "", wantErr: true},
		{in: "verbose", wantErr: true},
		{in: "info+2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := logging.ParseLevel(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseLevel(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseLevel(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			var l logging.Level
			if err := l.Decode(tt.in); err != nil || l.Level() != tt.want {
				t.Fatalf("Decode(%q) = %v, %v; want %v", tt.in, l, err, tt.want)
			}
		})
	}
}

// TestNewWritesJSONAtLevel checks the logger emits one JSON object per line
// and drops records below its level.
func TestNewWritesJSONAtLevel(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, slog.LevelWarn)
	log.Info("hidden")
	log.Warn("shown", "k", 1)

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1: %s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal(lines[0], &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	if rec["msg"] != "shown" || rec["level"] != "WARN" || rec["k"] != float64(1) {
		t.Fatalf("unexpected record %v", rec)
	}
}

func TestLevelString(t *testing.T) {
	if got := logging.Level(slog.LevelWarn).String(); got != "warn" {
		t.Fatalf("String() = %q, want warn", got)
	}
	var zero logging.Level
	if zero.Level() != slog.LevelInfo {
		t.Fatalf("zero Level = %v, want info", zero.Level())
	}
}
