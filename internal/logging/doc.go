// Package logging builds the structured logger every messagekit binary uses:
// log/slog with a JSON handler, one object per line.
//
// The package holds no state: New returns a fresh *slog.Logger that callers
// pass on explicitly. Level is the LOG_LEVEL value type; it decodes only the
// four documented names so that a typo stops start-up instead of silently
// logging at another level.
package logging
