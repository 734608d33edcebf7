package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/outbox"
	"github.com/firstunicorn/messagekit-go/pkg/outbox/outboxsarama"
)

// newRelay returns the Relay that publishes outbox_events to Kafka, for
// deployments without Debezium, and its publisher, to close after the
// Relay has stopped. Every replica may run one: they elect one publisher
// among themselves through an advisory lock.
func newRelay(cfg Config, pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer) (*outbox.Relay, *kafkaPublisher, error) {
	kafka := sarama.NewConfig()
	kafka.ClientID = eventSource
	// Bound a connection attempt while Kafka is unreachable (sarama's
	// defaults allow minutes), which also bounds how long shutdown waits
	// for the Relay.
	kafka.Net.DialTimeout = 5 * time.Second
	kafka.Metadata.Timeout = 5 * time.Second
	pub := &kafkaPublisher{brokers: cfg.KafkaBrokers, cfg: outboxsarama.Config{Sarama: kafka}}
	relay, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{
		Topic:      cfg.OutboxTopic,
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return nil, nil, err
	}
	return relay, pub, nil
}

// kafkaPublisher is an outboxsarama.Publisher that connects on first use
// rather than at start: the service takes orders while Kafka is down (the
// outbox keeps their events), and the Relay retries, with backoff, until
// Kafka answers.
type kafkaPublisher struct {
	brokers []string
	cfg     outboxsarama.Config

	mu     sync.Mutex
	pub    *outboxsarama.Publisher
	closed bool
}

// Publish implements outbox.Publisher.
func (p *kafkaPublisher) Publish(ctx context.Context, records []outbox.Record) []error {
	pub, err := p.connect()
	if err != nil {
		errs := make([]error, len(records))
		for i := range errs {
			errs[i] = err // not permanent: the Relay keeps the rows and retries
		}
		return errs
	}
	return pub.Publish(ctx, records)
}

func (p *kafkaPublisher) connect() (*outboxsarama.Publisher, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, outboxsarama.ErrClosed
	case p.pub == nil:
		pub, err := outboxsarama.New(p.brokers, p.cfg)
		if err != nil {
			return nil, fmt.Errorf("connect to Kafka %v: %w", p.brokers, err)
		}
		p.pub = pub
	}
	return p.pub, nil
}

// Close closes the Kafka producer, if it was ever connected.
func (p *kafkaPublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.pub == nil {
		return nil
	}
	return p.pub.Close()
}
