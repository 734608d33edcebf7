package service

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/firstunicorn/messagekit-go/internal/health"
	"github.com/firstunicorn/messagekit-go/internal/telemetry"
)

// Runtime is what Spec.Run gets from the process: its logger, metrics
// registry, tracing, and the means to register readiness checks, HTTP
// routes and cleanups. Its methods are safe for concurrent use.
type Runtime struct {
	logger   *slog.Logger
	registry *prometheus.Registry
	tracing  *telemetry.Tracing
	checks   *health.Handler
	mux      *http.ServeMux
	addr     net.Addr

	mu       sync.Mutex
	cleanups []cleanup
}

type cleanup struct {
	name string
	fn   func(ctx context.Context) error
}

// Logger returns the process's JSON logger, with service=<Spec.Name>.
func (rt *Runtime) Logger() *slog.Logger { return rt.logger }

// Registry returns the process's Prometheus registry, served at /metrics.
// It already holds the Go, process and build-info collectors.
func (rt *Runtime) Registry() *prometheus.Registry { return rt.registry }

// TracerProvider returns the tracer provider: the SDK's when OTEL_*
// variables enable tracing, a noop provider otherwise.
func (rt *Runtime) TracerProvider() trace.TracerProvider { return rt.tracing.TracerProvider() }

// Propagator returns the W3C tracecontext and baggage propagator.
func (rt *Runtime) Propagator() propagation.TextMapPropagator { return rt.tracing.Propagator() }

// Addr returns the address the HTTP server listens on (the bound port when
// HTTP_ADDR asked for port 0).
func (rt *Runtime) Addr() net.Addr { return rt.addr }

// AddCheck registers a readiness check reported by /readyz under name. A
// check that implements io.Closer is closed at shutdown. It panics on an
// empty or duplicate name, like http.ServeMux on a duplicate pattern.
func (rt *Runtime) AddCheck(name string, c health.Checker) { rt.checks.Add(name, c) }

// SetReady makes /readyz run the checks; until then it answers 503
// "starting". Call it once the work loop is set up.
func (rt *Runtime) SetReady() { rt.checks.SetState(health.Serving) }

// Handle registers an HTTP handler on the server at HTTP_ADDR, with
// http.ServeMux pattern syntax ("GET /api/v1/", ...). It panics on a pattern
// that conflicts with another, like http.ServeMux.Handle.
func (rt *Runtime) Handle(pattern string, h http.Handler) { rt.mux.Handle(pattern, h) }

// OnShutdown registers fn to run during shutdown, after Run has returned and
// the HTTP server has stopped, with the shutdown context (bounded by
// SHUTDOWN_TIMEOUT). Cleanups run one at a time, the last registered first;
// an error is logged under name and makes the exit code ExitFailure.
func (rt *Runtime) OnShutdown(name string, fn func(ctx context.Context) error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.cleanups = append(rt.cleanups, cleanup{name: name, fn: fn})
}

// runCleanups runs every cleanup, newest first, and returns their errors.
func (rt *Runtime) runCleanups(ctx context.Context) []error {
	rt.mu.Lock()
	cs := slices.Clone(rt.cleanups)
	rt.cleanups = nil
	rt.mu.Unlock()
	var errs []error
	for _, c := range slices.Backward(cs) {
		if err := c.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errs
}
