package bridge

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Bridge's messagekit_bridge_* collectors.
type metrics struct {
	consumed     *prometheus.CounterVec
	published    prometheus.Counter
	duplicates   prometheus.Counter
	deadLettered *prometheus.CounterVec
	unroutable   *prometheus.CounterVec
	latency      prometheus.Histogram
	batchSize    prometheus.Histogram
	lag          prometheus.Histogram
	breakerState prometheus.Gauge
	consumerLag  *prometheus.GaugeVec
	violations   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_bridge_records_consumed_total", Help: "Kafka records the bridge consumed, by topic.",
		}, []string{"topic"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "messagekit_bridge_published_total", Help: "Events RabbitMQ confirmed.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "messagekit_bridge_duplicates_skipped_total", Help: "Records skipped because their dedup key was already bridged.",
		}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_bridge_dead_lettered_total", Help: "Records written to the Kafka DLQ topic, by stage.",
		}, []string{"stage"}),
		unroutable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_bridge_unroutable_total", Help: "Messages RabbitMQ returned as unroutable and the bridge dropped, by routing key.",
		}, []string{"routing_key"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "messagekit_bridge_publish_latency_seconds", Help: "Time from a batch's first publish to its last confirm.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "messagekit_bridge_batch_size", Help: "Records per partition batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "messagekit_bridge_end_to_end_lag_seconds", Help: "Time from an event's occurredAt to RabbitMQ's confirm.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 22),
		}),
		breakerState: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "messagekit_bridge_breaker_state", Help: "State of the dedup store circuit breaker: 0 closed, 1 half-open, 2 open.",
		}),
		consumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "messagekit_bridge_consumer_lag_records",
			Help: "Records of a claimed partition not yet marked: high-water mark minus the next offset to mark, updated per batch.",
		}, []string{"topic", "partition"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_bridge_catalog_violations_total",
			Help: "Events the event catalog does not accept, by kind (unknown_type, unknown_source, unknown_version, schema); dead-lettered in strict mode, bridged otherwise.",
		}, []string{"kind"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.consumed, m.published, m.duplicates, m.deadLettered, m.unroutable, m.latency, m.batchSize, m.lag, m.breakerState, m.consumerLag, m.violations} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("bridge: register metrics: %w", err)
		}
	}
	return m, nil
}
