package bookkeeper

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// Kinds of processing errors, the "kind" label of
// messagekit_bookkeeper_processing_errors_total.
const (
	// ErrorStore: a batch could not be committed (PostgreSQL failing or
	// unreachable); its messages stay unacknowledged and are retried.
	ErrorStore = "store"
	// ErrorUnparseable: a message could not be parsed and was stored raw.
	ErrorUnparseable = "unparseable"
	// ErrorDegraded: PostgreSQL refused a message's content; it was stored
	// in reduced form.
	ErrorDegraded = "degraded"
	// ErrorAck: acknowledging on the broker (AMQP ack, Kafka offset mark)
	// failed after the commit; the message will be redelivered and
	// recognised as a repeat.
	ErrorAck = "ack"
	// ErrorConsume: the connection to the broker failed or was lost.
	ErrorConsume = "consume"
)

// Metrics are the bookkeeper's Prometheus metrics. A Metrics is safe for
// concurrent use.
type Metrics struct {
	recorded     *prometheus.CounterVec
	duplicates   *prometheus.CounterVec
	flagged      *prometheus.CounterVec
	notInOutbox  *prometheus.CounterVec
	errors       *prometheus.CounterVec
	batchSize    *prometheus.HistogramVec
	storeSeconds *prometheus.HistogramVec
	breaker      prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg:
//
//   - messagekit_bookkeeper_dead_letters_total{source,reason}: dead letters
//     recorded (new rows and repeats), reason as ReasonLabel gives it
//   - messagekit_bookkeeper_duplicate_deliveries_total{source}: repeated
//     receipts of a delivery already recorded, acknowledged without change
//   - messagekit_bookkeeper_outbox_flagged_total{source}: outbox rows marked failed
//   - messagekit_bookkeeper_outbox_not_found_total{source}: dead letters with an
//     event id not in this database's outbox
//   - messagekit_bookkeeper_processing_errors_total{source,kind}: see the Error* kinds
//   - messagekit_bookkeeper_batch_size_dead_letters{source}: dead letters per transaction
//   - messagekit_bookkeeper_store_duration_seconds{source}: time to commit a batch,
//     retries included
//   - messagekit_bookkeeper_breaker_state: the PostgreSQL circuit breaker,
//     0 closed, 1 half-open, 2 open
//
// It returns reg's error when one is already registered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_bookkeeper_dead_letters_total",
			Help: "Dead letters recorded in dead_letters (new rows and repeats), by source and reason.",
		}, []string{"source", "reason"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_bookkeeper_duplicate_deliveries_total",
			Help: "Repeated receipts of a dead letter delivery already recorded (redelivered after a commit), acknowledged without change.",
		}, []string{"source"}),
		flagged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_bookkeeper_outbox_flagged_total",
			Help: "Outbox rows marked failed because their event was dead-lettered.",
		}, []string{"source"}),
		notInOutbox: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_bookkeeper_outbox_not_found_total",
			Help: "Dead letters with an event id that is not in this database's outbox.",
		}, []string{"source"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_bookkeeper_processing_errors_total",
			Help: "Processing errors by kind: store (batch not committed, retried), unparseable (stored raw), degraded (stored in reduced form), ack, consume.",
		}, []string{"source", "kind"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "messagekit_bookkeeper_batch_size_dead_letters",
			Help:    "Dead letters stored per transaction.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}, []string{"source"}),
		storeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "messagekit_bookkeeper_store_duration_seconds",
			Help:    "Time to commit a batch of dead letters, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"source"}),
		breaker: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "messagekit_bookkeeper_breaker_state",
			Help: "State of the circuit breaker around PostgreSQL: 0 closed, 1 half-open, 2 open.",
		}),
	}
	for _, c := range []prometheus.Collector{m.recorded, m.duplicates, m.flagged, m.notInOutbox, m.errors,
		m.batchSize, m.storeSeconds, m.breaker} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("bookkeeper metrics: %w", err)
		}
	}
	for _, s := range []deadletter.Source{deadletter.SourceKafka, deadletter.SourceRabbitMQ} {
		for _, k := range []string{ErrorStore, ErrorUnparseable, ErrorDegraded, ErrorAck, ErrorConsume} {
			m.errors.WithLabelValues(string(s), k)
		}
	}
	return m, nil
}

// Error counts one processing error of kind (an Error* constant) at source.
// A nil Metrics counts nothing.
func (m *Metrics) Error(source deadletter.Source, kind string) {
	if m == nil {
		return
	}
	m.errors.WithLabelValues(string(source), kind).Inc()
}

func (m *Metrics) setBreaker(s gobreaker.State) {
	switch s {
	case gobreaker.StateClosed:
		m.breaker.Set(0)
	case gobreaker.StateHalfOpen:
		m.breaker.Set(1)
	default:
		m.breaker.Set(2)
	}
}
