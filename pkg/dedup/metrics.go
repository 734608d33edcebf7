package dedup

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of one Processor, labelled with its consumer name so that several
// consumers can share a registry.
type metrics struct {
	handled        prometheus.Counter
	duplicates     prometheus.Counter
	deadLettered   *prometheus.CounterVec
	retries        prometheus.Counter
	handlerSeconds prometheus.Histogram
	batchSize      prometheus.Histogram
	lagSeconds     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, consumer string) (*metrics, error) {
	labels := prometheus.Labels{"consumer": consumer}
	m := &metrics{
		handled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "messagekit_consumer_handled_total", ConstLabels: labels,
			Help: "Events whose handler ran and committed.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "messagekit_consumer_duplicates_total", ConstLabels: labels,
			Help: "Events skipped because this consumer had already processed them.",
		}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messagekit_consumer_dead_lettered_total", ConstLabels: labels,
			Help: "Messages dead-lettered, by reason (the dead-letter stage: DECODE, VALIDATE, RECORD_TOO_LARGE, TASK_PUT).",
		}, []string{"reason"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "messagekit_consumer_retries_total", ConstLabels: labels,
			Help: "Handler attempts that failed transiently and were retried.",
		}),
		handlerSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "messagekit_consumer_handler_duration_seconds", ConstLabels: labels,
			Help:    "Time spent in the event handler, per event (a batch handler's time is shared among its events).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "messagekit_consumer_batch_size", ConstLabels: labels,
			Help:    "Messages processed together, in one transaction when possible.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		lagSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "messagekit_consumer_lag_seconds", ConstLabels: labels,
			Help:    "End-to-end lag of handled events: commit time minus the envelope's occurredAt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.handled = register(reg, m.handled, &err)
	m.duplicates = register(reg, m.duplicates, &err)
	m.deadLettered = register(reg, m.deadLettered, &err)
	m.retries = register(reg, m.retries, &err)
	m.handlerSeconds = register(reg, m.handlerSeconds, &err)
	m.batchSize = register(reg, m.batchSize, &err)
	m.lagSeconds = register(reg, m.lagSeconds, &err)
	return m, err
}

// register registers c, or returns the collector already registered under
// the same name and labels, so that a consumer restarted in one process
// keeps counting. The first other error is kept in *errp.
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
	if *errp == nil {
		*errp = err
	}
	return c
}
