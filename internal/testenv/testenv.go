package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"
)

// RequireVariable, when set to 1, turns an unreachable service into a test
// failure instead of a skip.
const RequireVariable = "MESSAGEKIT_REQUIRE_INTEGRATION"

// probeTimeout bounds each attempt to reach a service.
const probeTimeout = 5 * time.Second

// Required reports whether integration tests must not skip.
func Required() bool { return os.Getenv(RequireVariable) == "1" }

// unavailable skips t, or fails it when integration tests are required.
func unavailable(t testing.TB, variable string, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("%s=1 but the service for %s is unreachable: %v", RequireVariable, variable, err)
	}
	t.Skipf("integration test skipped: set %s to a reachable server (%v)", variable, err)
}

// envOr returns the variable's value, or def when it is unset or empty.
func envOr(variable, def string) string {
	if v := os.Getenv(variable); v != "" {
		return v
	}
	return def
}

// UniqueName returns base followed by a fragment of the test's name and a
// random suffix, usable as a queue, exchange, topic or group name. It is
// unique across parallel tests and test processes.
func UniqueName(t testing.TB, base string) string {
	t.Helper()
	return base + "." + slug(t.Name(), 24, '-') + "." + randomHex(4)
}

// slug keeps the lower-cased letters and digits of s, turning runs of
// anything else into sep, and cuts the result to at most n bytes.
func slug(s string, n int, sep rune) string {
	var b strings.Builder
	lastSep := true
	for _, r := range strings.ToLower(s) {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
			lastSep = false
		} else if !lastSep {
			b.WriteRune(sep)
			lastSep = true
		}
		if b.Len() >= n {
			break
		}
	}
	return strings.Trim(b.String(), string(sep))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// skipShort skips integration tests under go test -short (make test-short).
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
}
