package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultTimeout bounds each check when Config.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// Checker reports whether one dependency is usable: nil when it is. Check
// must return when ctx is done (its deadline is the per-check timeout) and
// must be safe to call from a different goroutine each time; the Handler
// never runs one Checker twice at once. A Checker that also implements
// io.Closer is closed by Handler.Close.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to Checker.
type CheckFunc func(ctx context.Context) error

// Check calls f(ctx).
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// State is the process's lifecycle phase as /readyz reports it.
type State int32

const (
	// Starting: the process is not yet serving; /readyz answers 503
	// {"status":"starting"} without running checks. The initial state.
	Starting State = iota
	// Serving: /readyz runs the checks.
	Serving
	// Stopping: the process is shutting down; /readyz answers 503
	// {"status":"stopping"} without running checks.
	Stopping
)

// Statuses in a Report and its Results.
const (
	// StatusReady: serving, and every check is up (HTTP 200).
	StatusReady = "ready"
	// StatusNotReady: serving, and at least one check is down (HTTP 503).
	StatusNotReady = "not_ready"
	// StatusStarting: the process is not serving yet (HTTP 503).
	StatusStarting = "starting"
	// StatusStopping: the process is shutting down (HTTP 503).
	StatusStopping = "stopping"
	// StatusUp: the check returned nil within its timeout.
	StatusUp = "up"
	// StatusDown: the check failed, timed out, or is still stuck in an
	// earlier call.
	StatusDown = "down"
)

// Report is the body of /readyz.
type Report struct {
	// Status is StatusReady when the process is serving and every check is
	// up, else StatusNotReady, StatusStarting or StatusStopping.
	Status string `json:"status"`
	// Checks has one entry per registered check while serving.
	Checks map[string]Result `json:"checks,omitempty"`
}

// Ready reports whether r.Status is StatusReady.
func (r Report) Ready() bool { return r.Status == StatusReady }

// Result is one check's outcome.
type Result struct {
	// Status is StatusUp or StatusDown.
	Status string `json:"status"`
	// LatencyMS is how long the check took, in whole milliseconds.
	LatencyMS int64 `json:"latency_ms"`
	// Error is the check's error when it is down. /readyz does not show
	// it (it may name hosts, users or worse, DESIGN.md §7, §11): the
	// Handler logs it when it changes (Config.Logger).
	Error string `json:"-"`
}

// Config configures New.
type Config struct {
	// Registry is served at /metrics and receives the check metrics
	// (messagekit_health_check_up and messagekit_health_check_failures_total,
	// labelled by check). Required.
	Registry *prometheus.Registry
	// Timeout bounds each check; zero means DefaultTimeout.
	Timeout time.Duration
	// Logger gets one line when a check goes down or its error changes
	// (naming the check and the error) and one when it is up again, so a
	// probe every few seconds does not repeat the same line; nil discards.
	Logger *slog.Logger
}

// Handler serves /healthz, /readyz and /metrics. It is safe for concurrent
// use; checks may be added while it serves.
type Handler struct {
	timeout time.Duration
	log     *slog.Logger
	metrics http.Handler
	mux     *http.ServeMux
	state   atomic.Int32

	up       *prometheus.GaugeVec
	failures *prometheus.CounterVec

	mu       sync.Mutex
	checks   []*entry
	inflight *evaluation // non-nil while checks run
}

type entry struct {
	name    string
	checker Checker
	busy    atomic.Bool // set while a call of checker is running
	lastErr string      // the error last logged; evaluations run one at a time
	wasDown bool
}

type evaluation struct {
	done   chan struct{}
	report Report
}

// New returns a Handler in state Starting. It returns an error when
// cfg.Registry is nil, cfg.Timeout is negative, or the check metrics are
// already registered in cfg.Registry.
func New(cfg Config) (*Handler, error) {
	if cfg.Registry == nil {
		return nil, errors.New("health: Config.Registry is required")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("health: negative Config.Timeout %v", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		timeout: cfg.Timeout,
		log:     cfg.Logger,
		metrics: promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "messagekit_health_check_up",
			Help: "Whether the last readiness check of a dependency succeeded (1) or failed (0).",
		}, []string{"check"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_health_check_failures_total",
			Help: "Readiness checks of a dependency that failed.",
		}, []string{"check"}),
	}
	for _, c := range []prometheus.Collector{h.up, h.failures} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("health: register metrics: %w", err)
		}
	}
	h.mux = http.NewServeMux()
	h.Register(h.mux)
	return h, nil
}

// Add registers checker under name, the key of its entry in /readyz. It
// panics if name is empty or already registered, or checker is nil: these
// are wiring mistakes, caught at the first start.
func (h *Handler) Add(name string, checker Checker) {
	if name == "" || checker == nil {
		panic("health: Add needs a name and a checker")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if slices.ContainsFunc(h.checks, func(e *entry) bool { return e.name == name }) {
		panic(fmt.Sprintf("health: check %q registered twice", name))
	}
	h.checks = append(h.checks, &entry{name: name, checker: checker})
	h.failures.WithLabelValues(name) // export 0 before the first failure
}

// SetState sets the lifecycle phase /readyz reports.
func (h *Handler) SetState(s State) { h.state.Store(int32(s)) }

// Check evaluates readiness as /readyz does. When an evaluation is already
// running, Check waits for its result instead of starting another. It
// returns ctx's error if ctx ends first; the evaluation goes on for others.
func (h *Handler) Check(ctx context.Context) (Report, error) {
	switch State(h.state.Load()) {
	case Starting:
		return Report{Status: StatusStarting}, nil
	case Stopping:
		return Report{Status: StatusStopping}, nil
	}
	h.mu.Lock()
	ev := h.inflight
	if ev == nil {
		ev = &evaluation{done: make(chan struct{})}
		h.inflight = ev
		checks := slices.Clone(h.checks)
		go func() {
			ev.report = h.evaluate(checks)
			h.mu.Lock()
			h.inflight = nil
			h.mu.Unlock()
			close(ev.done)
		}()
	}
	h.mu.Unlock()
	select {
	case <-ev.done:
		return ev.report, nil
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}
}

// grace is how long evaluate waits past the timeout for a check to report
// its own (more telling) error for the expired deadline.
const grace = 100 * time.Millisecond

func (h *Handler) evaluate(checks []*entry) Report {
	report := Report{Status: StatusReady, Checks: make(map[string]Result, len(checks))}
	type outcome struct {
		name string
		res  Result
	}
	results := make(chan outcome, len(checks)) // buffered: late checks never block
	pending := make(map[string]bool, len(checks))
	for _, e := range checks {
		if !e.busy.CompareAndSwap(false, true) {
			report.Checks[e.name] = Result{Status: StatusDown,
				Error: fmt.Sprintf("the previous check has not returned (it ignored its %v deadline)", h.timeout)}
			continue
		}
		pending[e.name] = true
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
			defer cancel()
			start := time.Now()
			err := e.checker.Check(ctx)
			// Free before reporting: the next evaluation may begin as soon
			// as this one has its results, and must not find it busy.
			e.busy.Store(false)
			res := Result{Status: StatusUp, LatencyMS: time.Since(start).Milliseconds()}
			if err != nil {
				res.Status, res.Error = StatusDown, err.Error()
				if ctx.Err() != nil {
					res.Error = fmt.Sprintf("timed out after %v: %v", h.timeout, err)
				}
			}
			results <- outcome{e.name, res}
		}()
	}
	timer := time.NewTimer(h.timeout + grace)
	defer timer.Stop()
	for len(pending) > 0 {
		select {
		case o := <-results:
			delete(pending, o.name)
			report.Checks[o.name] = o.res
		case <-timer.C:
			for name := range pending {
				report.Checks[name] = Result{Status: StatusDown, LatencyMS: h.timeout.Milliseconds(),
					Error: fmt.Sprintf("no answer within %v", h.timeout)}
			}
			clear(pending)
		}
	}
	for _, e := range checks {
		h.logTransition(e, report.Checks[e.name])
	}
	for name, res := range report.Checks {
		if res.Status == StatusUp {
			h.up.WithLabelValues(name).Set(1)
			continue
		}
		report.Status = StatusNotReady
		h.up.WithLabelValues(name).Set(0)
		h.failures.WithLabelValues(name).Inc()
	}
	return report
}

// logTransition logs e's result when it differs from the last one logged.
func (h *Handler) logTransition(e *entry, res Result) {
	switch {
	case res.Status == StatusUp && e.wasDown:
		e.wasDown, e.lastErr = false, ""
		h.log.Info("dependency ready again", slog.String("check", e.name))
	case res.Status != StatusUp && (!e.wasDown || res.Error != e.lastErr):
		e.wasDown, e.lastErr = true, res.Error
		h.log.Warn("dependency not ready", slog.String("check", e.name), slog.String("error", res.Error))
	}
}

// Close closes every registered checker that implements io.Closer and
// returns their errors joined. Call it once the server no longer serves.
func (h *Handler) Close() error {
	h.mu.Lock()
	checks := slices.Clone(h.checks)
	h.mu.Unlock()
	var errs []error
	for _, e := range checks {
		if c, ok := e.checker.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close check %s: %w", e.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Register adds GET /healthz, /readyz and /metrics to mux (HEAD included).
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", h.serveLiveness)
	mux.HandleFunc("GET /readyz", h.serveReadiness)
	mux.Handle("GET /metrics", h.metrics)
}

// ServeHTTP serves the three endpoints on their own, answering 404 for any
// other path and 405 for other methods.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) serveLiveness(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) serveReadiness(w http.ResponseWriter, r *http.Request) {
	report, err := h.Check(r.Context())
	if err != nil {
		return // the client went away
	}
	code := http.StatusOK
	if !report.Ready() {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, report)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
