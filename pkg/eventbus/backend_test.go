package eventbus_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/pkg/eventbus"
	"github.com/firstunicorn/messagekit-go/pkg/eventbus/eventbustest"
)

// Both backends pass the one conformance suite.
func TestBackendConformance(t *testing.T) {
	backends := []struct {
		name string
		new  func(t *testing.T) eventbus.Backend
	}{
		{"nil (Sync default)", func(*testing.T) eventbus.Backend { return nil }},
		{"Sync", func(*testing.T) eventbus.Backend { return eventbus.Sync{} }},
		{"Concurrent/workers=default", newConcurrent(0)},
		{"Concurrent/workers=1", newConcurrent(1)},
		{"Concurrent/workers=3", newConcurrent(3)},
		{"Concurrent/workers=16", newConcurrent(16)},
	}
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) { eventbustest.TestBackend(t, bk.new) })
	}
}

func newConcurrent(workers int) func(t *testing.T) eventbus.Backend {
	return func(t *testing.T) eventbus.Backend {
		c, err := eventbus.NewConcurrent(eventbus.ConcurrentConfig{Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

// Pins: the synchronous backend calls handlers in registration order,
// SubscribeAll handlers included, on every dispatch.
func TestSyncOrder(t *testing.T) {
	b := eventbus.New(eventbus.Config{})
	var got []string
	add := func(name string) eventbus.Handler {
		return func(context.Context, eventbus.Message) error { got = append(got, name); return nil }
	}
	mustSubscribe(t, b, "first", add("first"))
	if _, err := b.SubscribeAll(add("all")); err != nil {
		t.Fatal(err)
	}
	mustSubscribe(t, b, "second", add("second"))
	mustSubscribe(t, b, "third", add("third"))
	for i := range 3 {
		got = nil
		if err := b.Dispatch(context.Background(), eventbustest.Envelope(t, i)); err != nil {
			t.Fatal(err)
		}
		if want := []string{"first", "all", "second", "third"}; !slices.Equal(got, want) {
			t.Fatalf("dispatch %d called %v, want %v", i, got, want)
		}
	}
}

// Pins: with Sync, a handler unsubscribed by an earlier handler of the same
// dispatch is not called in that dispatch.
func TestSyncUnsubscribeLaterHandlerSkipped(t *testing.T) {
	b := eventbus.New(eventbus.Config{})
	var later *eventbus.Subscription
	var laterCalls int
	mustSubscribe(t, b, "first", func(context.Context, eventbus.Message) error { later.Unsubscribe(); return nil })
	later = mustSubscribe(t, b, "later", func(context.Context, eventbus.Message) error { laterCalls++; return nil })
	if err := b.Dispatch(context.Background(), eventbustest.Envelope(t, 1)); err != nil {
		t.Fatal(err)
	}
	if laterCalls != 0 {
		t.Errorf("unsubscribed handler ran %d times, want 0", laterCalls)
	}
}

// Pins: the concurrent backend really runs handlers in parallel: two
// handlers that each wait for the other complete (Sync would time out).
func TestConcurrentRunsInParallel(t *testing.T) {
	c, err := eventbus.NewConcurrent(eventbus.ConcurrentConfig{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	b := eventbus.New(eventbus.Config{Backend: c})
	var barrier sync.WaitGroup
	barrier.Add(2)
	for _, name := range []string{"a", "b"} {
		mustSubscribe(t, b, name, func(context.Context, eventbus.Message) error {
			barrier.Done()
			return waitTimeout(&barrier, 10*time.Second)
		})
	}
	if err := b.Dispatch(context.Background(), eventbustest.Envelope(t, 1)); err != nil {
		t.Fatalf("handlers did not meet: %v", err)
	}
}

// Pins: at most Workers goroutines plus the dispatching one run handlers.
func TestConcurrentBound(t *testing.T) {
	const workers = 2
	c, err := eventbus.NewConcurrent(eventbus.ConcurrentConfig{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	b := eventbus.New(eventbus.Config{Backend: c})
	var running, peak atomic.Int32
	release := make(chan struct{})
	for range 10 {
		mustSubscribe(t, b, "blocker", func(context.Context, eventbus.Message) error {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-release
			running.Add(-1)
			return nil
		})
	}
	done := make(chan error, 1)
	go func() { done <- b.Dispatch(context.Background(), eventbustest.Envelope(t, 1)) }()
	waitFor(t, func() bool { return running.Load() == workers+1 })
	// Give an unbounded backend the chance to start more before releasing.
	for range 100 {
		runtime.Gosched()
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := peak.Load(); got != workers+1 {
		t.Errorf("peak concurrency %d, want Workers+1 = %d", got, workers+1)
	}
}

func TestNewConcurrentWorkers(t *testing.T) {
	tests := []struct {
		workers, want int
		wantErr       bool
	}{
		{0, runtime.GOMAXPROCS(0), false},
		{1, 1, false},
		{7, 7, false},
		{-1, 0, true},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			c, err := eventbus.NewConcurrent(eventbus.ConcurrentConfig{Workers: tt.workers})
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewConcurrent(%d) error = %v, wantErr %v", tt.workers, err, tt.wantErr)
			}
			if err == nil && c.Workers() != tt.want {
				t.Errorf("Workers() = %d, want %d", c.Workers(), tt.want)
			}
		})
	}
}

func mustSubscribe(t testing.TB, b *eventbus.Bus, name string, h eventbus.Handler) *eventbus.Subscription {
	t.Helper()
	s, err := b.SubscribeEnvelope("test.thing.happened", h, eventbus.WithName(name))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(d):
		return context.DeadlineExceeded
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
