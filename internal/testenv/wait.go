package testenv

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond every 10 ms until it holds, and fails t when limit
// passes first, naming what it waited for. Tests use it instead of sleeps.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SyncBuffer is a bytes.Buffer safe for a process's or logger's concurrent
// writes while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Run runs fn in a goroutine until the returned stop is called or the test
// ends. stop cancels fn's context and returns fn's result, or an error when
// fn has not returned within 30 s; calling it again returns the same.
func Run(t testing.TB, fn func(ctx context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("Run did not return within 30s of cancellation")
		}
	})
	t.Cleanup(func() { _ = stop() })
	return stop
}
