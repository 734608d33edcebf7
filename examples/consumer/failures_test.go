package main

import (
	"testing"

	"github.com/google/uuid"
)

// unluckiness is the documented hash, so that other tools (an end-to-end
// test, a dashboard) can tell which events fail: pinned with values
// computed independently (Python: int.from_bytes(sha256(u.bytes)[:8]) / 2**64).
func TestUnluckinessIsTheDocumentedHash(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want float64
	}{
		{"0193f0c4-8a4e-7c2d-9b1e-3f5a6b7c8d9e", 0.23682863963164294},
		{"00000000-0000-0000-0000-000000000001", 0.4853027501917451},
	} {
		if got := unluckiness(uuid.MustParse(tc.id)); got < tc.want-1e-15 || got > tc.want+1e-15 {
			t.Errorf("unluckiness(%s) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// REJECT_FRACTION picks about that fraction of events: none at 0, all at 1.
func TestUnluckyFraction(t *testing.T) {
	const n = 4000
	for _, tc := range []struct{ fraction, min, max float64 }{
		{0, 0, 0}, {0.25, 0.22, 0.28}, {0.5, 0.47, 0.53}, {1, 1, 1},
	} {
		s := simulatedFailures{fraction: tc.fraction}
		hits := 0
		for range n {
			if s.unlucky(uuid.New()) {
				hits++
			}
		}
		if got := float64(hits) / n; got < tc.min || got > tc.max {
			t.Errorf("REJECT_FRACTION=%v: %v of events unlucky, want %v..%v", tc.fraction, got, tc.min, tc.max)
		}
	}
}
