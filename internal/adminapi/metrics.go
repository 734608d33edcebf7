package adminapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// unmatchedRoute is the route label of a request no route matched, so
// unknown paths can not grow the label set.
const unmatchedRoute = "unmatched"

// Metrics counts the API's requests by route pattern (never the raw path),
// method and status. Build it with [NewMetrics]; it is safe for concurrent
// use.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	replays  *prometheus.CounterVec
	replayed *prometheus.CounterVec
	actions  *prometheus.CounterVec
}

// NewMetrics registers messagekit_admin_requests_total{route,method,status},
// messagekit_admin_request_duration_seconds{route,method},
// messagekit_admin_replays_total{kind},
// messagekit_admin_replayed_messages_total{kind,source} and
// messagekit_admin_actions_total{action,outcome} on reg; kind is the
// action of the replay (dead_letter.replay, dead_letters.replay, dlq.retry,
// outbox.replay). It
// returns the registration error, e.g. when they are already registered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_admin_requests_total",
			Help: "Admin API requests by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "messagekit_admin_request_duration_seconds",
			Help:    "Admin API request latency by route pattern and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_admin_replays_total",
			Help: "Replay requests carried out, by kind (dead_letter, dead_letters, dlq_retry, outbox).",
		}, []string{"kind"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_admin_replayed_messages_total",
			Help: "Messages replayed and confirmed by the broker, by replay kind and source (rabbitmq, kafka, outbox).",
		}, []string{"kind", "source"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_admin_actions_total",
			Help: "Mutating admin actions recorded in admin_actions, by action and outcome (ok, partial, refused, error).",
		}, []string{"action", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.replays, m.replayed, m.actions} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("adminapi: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := unmatchedRoute
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		method := r.Method
		if !knownMethod(method) {
			method = "other"
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	})
}

// knownMethod keeps arbitrary request methods out of the label set.
func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}
