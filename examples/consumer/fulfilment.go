package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/dedup"
)

// schema is the service's own tables. fulfilment_log deliberately has no
// unique constraint on event_id: dedup alone keeps each event to one row,
// and a failure of it would show as count(*) > count(DISTINCT event_id).
// A real service would keep its tables in migrations of its own.
const schema = `
CREATE TABLE IF NOT EXISTS fulfilment_log (
	seq         bigserial   PRIMARY KEY,
	event_id    uuid        NOT NULL,
	event_type  text        NOT NULL,
	order_id    text        NOT NULL,
	line_no     int         NOT NULL,
	consumed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS fulfilment_rejections (
	event_id    uuid        PRIMARY KEY,
	rejected_at timestamptz NOT NULL DEFAULT now()
);`

// prepareDatabase creates the service's tables if missing and checks that
// the messagekit migrations created processed_messages, the dedup store,
// in the same database: claims must share the handlers' transactions.
func prepareDatabase(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Replicas starting together would race on CREATE TABLE IF NOT EXISTS.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('fulfilment schema'))"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("create tables fulfilment_log, fulfilment_rejections: %w", err)
	}
	_, err = pool.Exec(ctx, "SELECT consumer_name, event_id FROM processed_messages LIMIT 0")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42703") { // undefined table, column
		return fmt.Errorf("processed_messages is missing (%s): apply the messagekit migrations to DATABASE_URL first (admin-api migrate)", pgErr.Message)
	}
	if err != nil {
		return fmt.Errorf("check processed_messages: %w", err)
	}
	return nil
}

// fulfilment logs the orders and lines to fulfil. Its handlers run inside
// the dedup transaction, which also records the event as processed: the
// row and the claim commit together, so each event is logged once however
// often RabbitMQ delivers it. Returning an error rolls both back; the
// event is then retried, or dead-lettered when the error is permanent.
type fulfilment struct {
	handled *prometheus.CounterVec
}

func newFulfilment(reg prometheus.Registerer) *fulfilment {
	f := &fulfilment{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fulfilment_events_handled_total",
			Help: "Events written to fulfilment_log, by event type. A write whose transaction rolls back" +
				" (a batch with a failed event is redone one by one) counts again when redone;" +
				" messagekit_consumer_handled_total counts commits.",
		}, []string{"event_type"}),
	}
	reg.MustRegister(f.handled)
	return f
}

// orderCreated handles sales.order.created.
func (f *fulfilment) orderCreated(ctx context.Context, tx pgx.Tx, o OrderCreated) error {
	return f.log(ctx, tx, o.OrderID, 0)
}

// lineAdded handles sales.order.line-added.
func (f *fulfilment) lineAdded(ctx context.Context, tx pgx.Tx, l OrderLineAdded) error {
	if l.LineNo < 1 {
		return dedup.Permanent(fmt.Errorf("lineNo %d: want 1 or more", l.LineNo))
	}
	return f.log(ctx, tx, l.OrderID, l.LineNo)
}

func (f *fulfilment) log(ctx context.Context, tx pgx.Tx, orderID string, lineNo int) error {
	if orderID == "" {
		// Redelivering it would not help: dead-letter it for a human.
		return dedup.Permanent(errors.New("orderId is empty"))
	}
	env, _ := dedup.EnvelopeFrom(ctx) // the whole event, for its id and type
	_, err := tx.Exec(ctx, "INSERT INTO fulfilment_log (event_id, event_type, order_id, line_no) VALUES ($1, $2, $3, $4)",
		env.EventID, env.EventType, orderID, lineNo)
	if err != nil {
		return fmt.Errorf("log event %s: %w", env.EventID, err) // transient: retried
	}
	f.handled.WithLabelValues(env.EventType).Inc()
	return nil
}
