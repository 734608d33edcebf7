package eventbus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/eventbus"
	"github.com/firstunicorn/messagekit-go/pkg/eventbus/eventbustest"
)

// Pins: the outbox handler refuses to write outside a transaction.
func TestOutboxHandlerWithoutTx(t *testing.T) {
	b := eventbus.New(eventbus.Config{})
	if _, err := b.SubscribeAll(eventbus.OutboxHandler(nil), eventbus.WithName("outbox")); err != nil {
		t.Fatal(err)
	}
	err := b.Dispatch(context.Background(), eventbustest.Envelope(t, 1))
	var he *eventbus.HandlerError
	if !errors.Is(err, eventbus.ErrNoTx) || !errors.As(err, &he) || he.Handler != "outbox" {
		t.Errorf("Dispatch = %v, want ErrNoTx from handler outbox", err)
	}
}

// Pins (integration, PostgreSQL): DispatchTx with the outbox handler writes
// the event in the caller's transaction: it commits with the business
// writes, rolls back with them (here because a later handler fails), and
// other handlers see the same transaction.
func TestOutboxHandlerPostgres(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE things (n int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	b := eventbus.New(eventbus.Config{})
	if _, err := b.SubscribeAll(eventbus.OutboxHandler(nil), eventbus.WithName("outbox")); err != nil {
		t.Fatal(err)
	}
	failOn := errors.New("business rule failed")
	if _, err := eventbus.SubscribeMessage(b, thingHappened, func(ctx context.Context, m eventbus.Message, d eventbustest.Data) error {
		if _, err := m.Tx.Exec(ctx, `INSERT INTO things (n) VALUES ($1)`, d.N); err != nil {
			return err
		}
		if d.N < 0 {
			return failOn
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		n       int
		wantErr error
		wantRow bool
	}{
		{"commit", 1, nil, true},
		{"rollback", -1, failOn, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := eventbustest.Envelope(t, tt.n)
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return b.DispatchTx(ctx, tx, env) })
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("transaction = %v, want %v", err, tt.wantErr)
			}
			var events, things int
			var eventType, aggregateID string
			if err := db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(max(event_type), ''), coalesce(max(aggregate_id), '')
				FROM outbox_events WHERE event_id = $1`, env.EventID).Scan(&events, &eventType, &aggregateID); err != nil {
				t.Fatal(err)
			}
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM things WHERE n = $1`, tt.n).Scan(&things); err != nil {
				t.Fatal(err)
			}
			want := map[bool]int{true: 1, false: 0}[tt.wantRow]
			if events != want || things != want {
				t.Errorf("outbox rows %d, business rows %d; want %d of each", events, things, want)
			}
			if tt.wantRow && (eventType != env.EventType || aggregateID != env.AggregateID) {
				t.Errorf("outbox row has type %q aggregate %q, want %q %q", eventType, aggregateID, env.EventType, env.AggregateID)
			}
		})
	}
}
