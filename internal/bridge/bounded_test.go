package bridge

import (
	"fmt"
	"testing"
	"time"
)

// Pins the label cap: routing keys beyond MaxRoutingKeyLabels fold into
// "other", and a key seen before the cap keeps its own label.
func TestLabelCapFolds(t *testing.T) {
	c := newLabelCap(3)
	for i, want := range []string{"a", "b", "c", OtherLabel, OtherLabel} {
		if got := c.value(string(rune('a' + i))); got != want {
			t.Errorf("value #%d = %q, want %q", i, got, want)
		}
	}
	if got := c.value("b"); got != "b" {
		t.Errorf("a key within the cap became %q", got)
	}
}

// Pins the bound on the unroutable log map: a producer sending ever new
// routing keys cannot grow it past maxUnroutableLogKeys (+1 for the shared
// entry), expired keys are forgotten, and each key still logs at most
// once a minute.
func TestUnroutableLogBounded(t *testing.T) {
	b := &Bridge{unroutable: make(map[string]time.Time)}
	now := time.Now()
	for i := range 10 * maxUnroutableLogKeys {
		b.shouldLogUnroutable(fmt.Sprint("key.", i), now)
	}
	if n := len(b.unroutable); n > maxUnroutableLogKeys+1 {
		t.Fatalf("%d keys kept, want at most %d", n, maxUnroutableLogKeys+1)
	}
	if b.shouldLogUnroutable("key.1", now.Add(time.Second)) {
		t.Error("a key logged twice within a minute")
	}
	if !b.shouldLogUnroutable("fresh", now.Add(2*unroutableLogEvery)) {
		t.Error("a new key after the others expired was not logged")
	}
	if n := len(b.unroutable); n != 1 {
		t.Errorf("%d keys kept after the others expired, want 1", n)
	}
}
