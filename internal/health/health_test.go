package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/firstunicorn/messagekit-go/internal/health"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

func newHandler(t *testing.T, timeout time.Duration) (*health.Handler, *httptest.Server) {
	t.Helper()
	h, srv, _ := newLoggedHandler(t, timeout)
	return h, srv
}

// newLoggedHandler is newHandler whose log lines (the checks' errors,
// which /readyz leaves out) are in logs.
func newLoggedHandler(t *testing.T, timeout time.Duration) (*health.Handler, *httptest.Server, *testenv.SyncBuffer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	logs := &testenv.SyncBuffer{}
	h, err := health.New(health.Config{Registry: reg, Timeout: timeout, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h.SetState(health.Serving)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv, logs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func readyz(t *testing.T, srv *httptest.Server) (int, health.Report) {
	t.Helper()
	code, body := get(t, srv.URL+"/readyz")
	if strings.Contains(body, `"error"`) {
		t.Errorf("/readyz shows error text: %s", body)
	}
	var r health.Report
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz body is not a report: %v: %s", err, body)
	}
	return code, r
}

func up(context.Context) error { return nil }

func TestLiveness(t *testing.T) {
	_, srv := newHandler(t, 0)
	code, body := get(t, srv.URL+"/healthz")
	if code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	if code, _ := get(t, srv.URL+"/nope"); code != http.StatusNotFound {
		t.Fatalf("/nope = %d, want 404", code)
	}
}

func TestReadyAllUp(t *testing.T) {
	h, srv := newHandler(t, 0)
	h.Add("postgres", health.CheckFunc(up))
	h.Add("kafka", health.CheckFunc(up))
	code, r := readyz(t, srv)
	if code != http.StatusOK || r.Status != health.StatusReady || len(r.Checks) != 2 ||
		r.Checks["postgres"].Status != health.StatusUp || r.Checks["kafka"].Status != health.StatusUp {
		t.Fatalf("/readyz = %d %+v", code, r)
	}
}

// TestReadyOneDown pins the 503, that the body names the failed component
// without its error (DESIGN.md §7, §11), and that the log has the error.
func TestReadyOneDown(t *testing.T) {
	h, srv, logs := newLoggedHandler(t, 0)
	h.Add("postgres", health.CheckFunc(up))
	h.Add("rabbitmq", health.CheckFunc(func(context.Context) error { return errors.New("connection refused") }))
	code, r := readyz(t, srv)
	if code != http.StatusServiceUnavailable || r.Status != health.StatusNotReady {
		t.Fatalf("/readyz = %d %+v, want 503 not_ready", code, r)
	}
	if got := r.Checks["rabbitmq"]; got.Status != health.StatusDown || !strings.Contains(logs.String(), "connection refused") {
		t.Fatalf("rabbitmq = %+v; logs %s", got, logs.String())
	}
	if r.Checks["postgres"].Status != health.StatusUp {
		t.Fatalf("postgres = %+v", r.Checks["postgres"])
	}

	// The metrics follow the last evaluation.
	_, metrics := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		`messagekit_health_check_up{check="rabbitmq"} 0`,
		`messagekit_health_check_up{check="postgres"} 1`,
		`messagekit_health_check_failures_total{check="rabbitmq"} 1`,
		`messagekit_health_check_failures_total{check="postgres"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestCheckTimeout pins that a check gets a deadline of the configured
// timeout and is reported down when it runs out.
func TestCheckTimeout(t *testing.T) {
	const timeout = 150 * time.Millisecond
	h, srv, logs := newLoggedHandler(t, timeout)
	var deadline atomic.Int64
	h.Add("slow", health.CheckFunc(func(ctx context.Context) error {
		if dl, ok := ctx.Deadline(); ok {
			deadline.Store(int64(time.Until(dl)))
		}
		<-ctx.Done()
		return ctx.Err()
	}))
	start := time.Now()
	code, r := readyz(t, srv)
	elapsed := time.Since(start)
	if code != http.StatusServiceUnavailable || r.Checks["slow"].Status != health.StatusDown ||
		!strings.Contains(logs.String(), "timed out after 150ms") {
		t.Fatalf("/readyz = %d %+v", code, r)
	}
	if d := time.Duration(deadline.Load()); d <= 0 || d > timeout {
		t.Fatalf("check saw a deadline %v away, want within %v", d, timeout)
	}
	if elapsed > 2*time.Second {
		t.Fatalf("/readyz took %v with a %v timeout", elapsed, timeout)
	}
}

// TestCheckIgnoringDeadline pins that a check that never returns is reported
// down after the timeout, and is not started again while it still runs, so
// each probe does not leak another goroutine.
func TestCheckIgnoringDeadline(t *testing.T) {
	h, srv, logs := newLoggedHandler(t, 50*time.Millisecond)
	release := make(chan struct{})
	defer close(release)
	var calls atomic.Int32
	h.Add("stuck", health.CheckFunc(func(context.Context) error {
		calls.Add(1)
		<-release
		return nil
	}))
	code, r := readyz(t, srv)
	if code != http.StatusServiceUnavailable || !strings.Contains(logs.String(), "no answer within 50ms") {
		t.Fatalf("first /readyz = %d %+v; logs %s", code, r, logs.String())
	}
	for range 5 {
		code, r = readyz(t, srv)
		if code != http.StatusServiceUnavailable || r.Checks["stuck"].Status != health.StatusDown {
			t.Fatalf("later /readyz = %d %+v", code, r)
		}
	}
	if n := strings.Count(logs.String(), "has not returned"); n != 1 {
		t.Errorf("the unchanged error logged %d times, want once:\n%s", n, logs.String())
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("stuck check started %d times, want 1", n)
	}
}

// TestConcurrentProbesShareOneEvaluation pins the bound on concurrent work:
// requests arriving while checks run wait for that evaluation's result
// instead of each starting the checks again.
func TestConcurrentProbesShareOneEvaluation(t *testing.T) {
	h, _ := newHandler(t, 5*time.Second)
	var entered atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	release := make(chan struct{})
	var calls atomic.Int32
	h.Add("gated", health.CheckFunc(func(ctx context.Context) error {
		calls.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))

	const n = 30
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Error(err)
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	// Wait until every probe is being served while the check is held.
	deadline := time.Now().Add(5 * time.Second)
	for entered.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := calls.Load(); got != 1 || entered.Load() != n {
		t.Fatalf("check started %d times for %d probes in flight, want 1", got, entered.Load())
	}
	close(release)
	wg.Wait()
	close(codes)
	// Without sharing, the probes that found the check busy would have got 503.
	for code := range codes {
		if code != http.StatusOK {
			t.Fatalf("a concurrent probe got %d, want 200 from the shared evaluation", code)
		}
	}
}

func TestStates(t *testing.T) {
	h, srv := newHandler(t, 0)
	var calls atomic.Int32
	h.Add("c", health.CheckFunc(func(context.Context) error { calls.Add(1); return nil }))
	for _, tt := range []struct {
		state health.State
		code  int
		want  string
	}{
		{health.Starting, http.StatusServiceUnavailable, health.StatusStarting},
		{health.Serving, http.StatusOK, health.StatusReady},
		{health.Stopping, http.StatusServiceUnavailable, health.StatusStopping},
	} {
		h.SetState(tt.state)
		code, r := readyz(t, srv)
		if code != tt.code || r.Status != tt.want {
			t.Errorf("state %v: /readyz = %d %+v, want %d %s", tt.state, code, r, tt.code, tt.want)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("checks ran %d times, want only while serving", calls.Load())
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := health.New(health.Config{}); err == nil {
		t.Error("New without a registry succeeded")
	}
	if _, err := health.New(health.Config{Registry: prometheus.NewRegistry(), Timeout: -1}); err == nil {
		t.Error("New with a negative timeout succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := health.New(health.Config{Registry: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := health.New(health.Config{Registry: reg}); err == nil {
		t.Error("two handlers on one registry: want a duplicate-metrics error")
	}
}

func TestAddPanicsOnDuplicate(t *testing.T) {
	h, _ := newHandler(t, 0)
	h.Add("x", health.CheckFunc(up))
	defer func() {
		if recover() == nil {
			t.Fatal("second Add of x did not panic")
		}
	}()
	h.Add("x", health.CheckFunc(up))
}

type closer struct {
	health.CheckFunc
	closed bool
}

func (c *closer) Close() error { c.closed = true; return errors.New("boom") }

func TestCloseClosesCheckers(t *testing.T) {
	h, _ := newHandler(t, 0)
	c := &closer{CheckFunc: up}
	h.Add("closable", c)
	h.Add("plain", health.CheckFunc(up))
	if err := h.Close(); err == nil || !strings.Contains(err.Error(), "closable") || !c.closed {
		t.Fatalf("Close() = %v, closed=%v", err, c.closed)
	}
}

// Pins that an evaluation which has returned leaves its checks free: a
// probe right after another found a fast check "busy" when the check's
// goroutine marked itself free only after reporting (CI caught it once).
func TestBackToBackProbesFindChecksFree(t *testing.T) {
	h, _ := newHandler(t, 2*time.Second)
	h.Add("dep", health.CheckFunc(up))
	for i := range 5000 {
		rep, err := h.Check(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Status != health.StatusReady {
			t.Fatalf("probe %d: %+v", i, rep)
		}
	}
}
