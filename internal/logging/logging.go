package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a logger that writes JSON lines at level and above to w.
// Writes to w are serialised by the handler, so w need not be safe for
// concurrent use; the returned logger is safe for concurrent use.
func New(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Level is a log level as written in LOG_LEVEL: debug, info, warn (or
// warning) or error, case-insensitive. The zero value is info. It implements
// the Decode method that envconfig calls, so it can be a config field.
type Level slog.Level

// Decode sets l from s. It returns an error for any other name, including
// the empty string and slog's offset forms such as "info+2".
func (l *Level) Decode(s string) error {
	lv, err := ParseLevel(s)
	if err != nil {
		return err
	}
	*l = Level(lv)
	return nil
}

// Level returns l as a slog.Level.
func (l Level) Level() slog.Level { return slog.Level(l) }

// String returns l's lower-case name, as ParseLevel accepts it.
func (l Level) String() string { return strings.ToLower(slog.Level(l).String()) }

// ParseLevel parses a LOG_LEVEL value. It accepts debug, info, warn, warning
// and error in any case and returns an error saying which names are valid
// for anything else.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("want debug, info, warn or error")
}
