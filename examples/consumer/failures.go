package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/amqpconsumer"
)

// simulatedFailures makes a deterministic fraction of events fail on first
// delivery (REJECT_FRACTION), to demonstrate dead letters and their replay.
// It is a demo device: a real service has no use for it.
//
// An event is unlucky when unluckiness(eventId) < REJECT_FRACTION (see
// [unluckiness]), the same in every replica and after restarts. An unlucky
// event fails with a dedup.Permanent error unless its delivery is a replay
// (it carries the x-replay-count header the admin API adds, read with
// amqpconsumer.DeliveryFrom): amqpconsumer rejects the message without
// requeue at once (permanent errors are not retried), so RabbitMQ
// dead-letters it to AMQP_DLX, where the dlq-bookkeeper stores it. Replayed,
// it is handled normally: the bug has been fixed since. A redelivery that is
// not a replay (after a lost connection, say) fails again, so every unlucky
// event is dead-lettered before it is handled.
//
// Each rejection is also recorded in fulfilment_rejections, on the pool and
// outside the dedup transaction so that it survives the rollback the
// failure causes; the demo's summary counts them.
type simulatedFailures struct {
	next     dedup.Handler
	pool     *pgxpool.Pool
	fraction float64
	rejected prometheus.Counter
}

func newSimulatedFailures(next dedup.Handler, pool *pgxpool.Pool, fraction float64, reg prometheus.Registerer) *simulatedFailures {
	s := &simulatedFailures{
		next: next, pool: pool, fraction: fraction,
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fulfilment_events_rejected_total",
			Help: "Events failed on purpose on their first delivery (REJECT_FRACTION), and so dead-lettered.",
		}),
	}
	reg.MustRegister(s.rejected)
	return s
}

// HandleEvent handles one event alone: the only place a rejection is
// decided, since only here is the delivery (and so its headers) at hand.
func (s *simulatedFailures) HandleEvent(ctx context.Context, tx pgx.Tx, env contracts.Envelope) error {
	if !s.unlucky(env.EventID) || replayed(ctx) {
		return s.next.HandleEvent(ctx, tx, env)
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO fulfilment_rejections (event_id) VALUES ($1) ON CONFLICT DO NOTHING", env.EventID)
	if err != nil {
		return fmt.Errorf("record rejection of %s: %w", env.EventID, err) // transient: retried
	}
	s.rejected.Inc()
	return dedup.Permanent(fmt.Errorf("simulated failure of event %s (REJECT_FRACTION=%g)", env.EventID, s.fraction))
}

// replayed reports whether the delivery being handled was replayed from
// the dead-letter store.
func replayed(ctx context.Context) bool {
	d, ok := amqpconsumer.DeliveryFrom(ctx)
	if !ok {
		return false
	}
	_, ok = d.Headers[contracts.AMQPHeaderReplayCount]
	return ok
}

// errUnluckyInBatch fails a batch that holds an unlucky event.
var errUnluckyInBatch = errors.New("an unlucky event in the batch: handling its events one by one")

// HandleEvents handles the new events of a batch in one transaction
// (dedup.BatchHandler). It does not see the deliveries, so it can not tell
// a replay: a batch that holds an unlucky event fails before anything is
// written, and dedup handles its events again one at a time with
// HandleEvent, which decides.
func (s *simulatedFailures) HandleEvents(ctx context.Context, tx pgx.Tx, envs []contracts.Envelope) error {
	for _, env := range envs {
		if s.unlucky(env.EventID) {
			return errUnluckyInBatch
		}
	}
	for _, env := range envs {
		if err := s.next.HandleEvent(ctx, tx, env); err != nil {
			return err
		}
	}
	return nil
}

func (s *simulatedFailures) unlucky(id uuid.UUID) bool {
	return unluckiness(id) < s.fraction
}

// unluckiness maps an event id to [0, 1), uniformly and deterministically:
// the first 8 bytes of the SHA-256 of the id's 16 bytes, read as a
// big-endian uint64 and divided by 2^64 (its top 53 bits, so that the
// result, a float64, stays below 1).
func unluckiness(id uuid.UUID) float64 {
	sum := sha256.Sum256(id[:])
	return math.Ldexp(float64(binary.BigEndian.Uint64(sum[:8])>>11), -53)
}
