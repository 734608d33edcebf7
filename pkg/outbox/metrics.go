package outbox

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// relayMetrics are the Relay's Prometheus collectors (DESIGN.md §8). They
// work unregistered when no Registerer is given.
type relayMetrics struct {
	published prometheus.Counter
	errors    *prometheus.CounterVec
	batch     prometheus.Histogram
	latency   prometheus.Histogram
	pending   prometheus.Gauge
	oldest    prometheus.Gauge
	leader    prometheus.Gauge
}

func newRelayMetrics(reg prometheus.Registerer) (*relayMetrics, error) {
	m := &relayMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "messagekit_outbox_relay_published_total",
			Help: "Outbox events the relay published to Kafka and marked published.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_outbox_relay_publish_errors_total",
			Help: "Records Kafka did not accept, by kind: retriable (the row stays pending) or permanent (the row is marked failed).",
		}, []string{"kind"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "messagekit_outbox_relay_batch_records",
			Help:    "Rows read per relay batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 … 16384
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "messagekit_outbox_relay_publish_latency_seconds",
			Help:    "Time from an outbox row's created_at (its writing transaction's start) to Kafka's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms … 33 s
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "messagekit_outbox_pending_events",
			Help: "Outbox rows neither published nor failed, as last counted by the active relay.",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "messagekit_outbox_oldest_pending_age_seconds",
			Help: "Age of the oldest pending outbox row, as last seen by the active relay; 0 when none.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "messagekit_outbox_relay_leader",
			Help: "1 while this relay holds the lease and publishes, 0 on standby.",
		}),
	}
	m.errors.WithLabelValues("retriable")
	m.errors.WithLabelValues("permanent")
	if reg == nil {
		return m, nil
	}
	var err error
	m.published = register(reg, m.published, &err)
	m.errors = register(reg, m.errors, &err)
	m.batch = register(reg, m.batch, &err)
	m.latency = register(reg, m.latency, &err)
	m.pending = register(reg, m.pending, &err)
	m.oldest = register(reg, m.oldest, &err)
	m.leader = register(reg, m.leader, &err)
	if err != nil {
		return nil, fmt.Errorf("outbox: register metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the identical collector registered
// before (two Relays in one process share their metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	*errp = errors.Join(*errp, err)
	return c
}
