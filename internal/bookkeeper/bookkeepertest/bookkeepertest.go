package bookkeepertest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// Proxy forwards TCP connections to a backend until it is taken down: then
// it closes every open connection and closes new ones at once, counting
// them, like a database that went away.
type Proxy struct {
	backend  string
	ln       net.Listener
	down     atomic.Bool
	attempts atomic.Int64 // connections refused while down
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// NewProxy starts a proxy to backend (host:port), closed when t ends.
func NewProxy(t testing.TB, backend string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{backend: backend, ln: ln, conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		p.closeAll()
	})
	return p
}

// Addr is where the proxy listens.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetDown takes the backend away (closing open connections) or brings it
// back.
func (p *Proxy) SetDown(down bool) {
	p.down.Store(down)
	if down {
		p.closeAll()
	}
}

// Refused returns how many connections were closed at once while down.
func (p *Proxy) Refused() int64 { return p.attempts.Load() }

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down.Load() {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) serve(c net.Conn) {
	if p.down.Load() {
		p.attempts.Add(1)
		_ = c.Close()
		return
	}
	b, err := net.Dial("tcp", p.backend)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, b) {
		p.attempts.Add(1)
		_ = c.Close()
		_ = b.Close()
		return
	}
	go func() { _, _ = io.Copy(b, c); _ = b.Close() }()
	_, _ = io.Copy(c, b)
	_ = c.Close()
}

// Env is one test's dead-letter store: a migrated database, reached
// directly (DB) and through Proxy (Store, Recorder).
type Env struct {
	DB       *testenv.Database
	Proxy    *Proxy
	Store    *deadletter.Store
	Recorder *bookkeeper.Recorder
	Registry *prometheus.Registry
	Logs     *Logs
}

// NewEnv makes an Env whose Recorder opens its breaker after 2 failures
// for 300ms and retries every 20 to 50ms.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	db := testenv.MigratedPostgres(t)
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("connect_timeout", "2")
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store, err := deadletter.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := bookkeeper.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &Logs{}
	rec, err := bookkeeper.NewRecorder(bookkeeper.Config{
		Store: store, Metrics: m, Logger: logs.Logger(),
		BreakerFailures: 2, BreakerTimeout: 300 * time.Millisecond,
		RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond, AttemptTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &Env{DB: db, Proxy: proxy, Store: store, Recorder: rec, Registry: reg, Logs: logs}
}

// Count returns the number of dead_letters rows (read directly).
func (e *Env) Count(t testing.TB) int {
	t.Helper()
	var n int
	if err := e.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM dead_letters`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// WaitRows waits until there are n rows.
func (e *Env) WaitRows(t testing.TB, n int, limit time.Duration) {
	t.Helper()
	WaitFor(t, limit, "dead_letters rows", func() bool { return e.Count(t) >= n })
	if got := e.Count(t); got != n {
		t.Fatalf("%d dead_letters rows, want %d", got, n)
	}
}

// Metric returns the value of the counter or gauge name with labels, 0
// when it has no such sample.
func (e *Env) Metric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// WaitFor polls cond every 20ms until it holds, failing t after limit.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, limit, what, cond)
}

// Run runs r until the test ends (or the returned stop is called) and
// fails the test if Run returns an error.
func Run(t testing.TB, r bookkeeper.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return within 30s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Logs collects JSON log lines.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger returns a debug-level JSON logger writing to l.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Write appends p.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
