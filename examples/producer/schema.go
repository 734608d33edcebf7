package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schema is the service's own tables. A real service would keep them in
// migrations of its own; creating them at start keeps the example short.
const schema = `
CREATE TABLE IF NOT EXISTS orders (
	id         text        PRIMARY KEY,
	customer   text        NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	line_count int         NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS order_lines (
	order_id text REFERENCES orders,
	line_no  int,
	sku      text NOT NULL,
	qty      int  NOT NULL,
	PRIMARY KEY (order_id, line_no)
);`

// prepareDatabase creates the service's tables if missing and checks that
// the messagekit migrations created outbox_events in the same database:
// the outbox must live next to the business tables to share their
// transactions.
func prepareDatabase(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Replicas starting together would race on CREATE TABLE IF NOT EXISTS.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('sales-service schema'))"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("create tables orders, order_lines: %w", err)
	}
	// The columns outbox.Writer writes, from the latest migration it needs.
	_, err = pool.Exec(ctx, "SELECT event_id, headers, traceparent, tracestate FROM outbox_events LIMIT 0")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42703") { // undefined table, column
		return fmt.Errorf("outbox_events is missing or out of date (%s): apply the messagekit migrations to DATABASE_URL first (admin-api migrate)", pgErr.Message)
	}
	if err != nil {
		return fmt.Errorf("check outbox_events: %w", err)
	}
	return nil
}
