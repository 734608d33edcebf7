package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// Invalid events are rejected before anything reaches the database, with
// the offending field named; the caller's transaction stays usable.
func TestWriterRejectsInvalidEvents(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	if _, err := db.Pool.Exec(ctx, "CREATE TABLE orders (id text PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		corrupt func(*contracts.Envelope)
		field   string
	}{
		{"nil event id", func(e *contracts.Envelope) { e.EventID = uuid.Nil }, "eventId"},
		{"event type not matching the pattern", func(e *contracts.Envelope) { e.EventType = "OrderPlaced" }, "eventType"},
		{"empty aggregate id", func(e *contracts.Envelope) { e.AggregateID = "" }, "aggregateId"},
		{"no occurredAt", func(e *contracts.Envelope) { e.OccurredAt = time.Time{} }, "occurredAt"},
		{"occurredAt beyond year 9999", func(e *contracts.Envelope) { e.OccurredAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "occurredAt"},
		{"bad source", func(e *contracts.Envelope) { e.Source = "Sales Service" }, "source"},
		{"data not an object", func(e *contracts.Envelope) { e.Data = json.RawMessage(`[1,2]`) }, "data"},
		{"metadata not JSON", func(e *contracts.Envelope) { e.Metadata = json.RawMessage(`{`) }, "metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := event(t, "order-1", 2)
			tc.corrupt(&bad)
			var w outbox.Writer
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "INSERT INTO orders VALUES ($1)", "o-"+tc.name); err != nil {
					return err
				}
				err := w.Add(ctx, tx, event(t, "order-1", 1), bad)
				var ve *contracts.ValidationError
				if !errors.As(err, &ve) || ve.Field != tc.field {
					return fmt.Errorf("Add: %v, want a *ValidationError for %s", err, tc.field)
				}
				if !strings.Contains(err.Error(), "event 2 of 2") {
					return fmt.Errorf("error %q does not say which event", err)
				}
				return nil // commit: the transaction must still work
			})
			if err != nil {
				t.Fatal(err)
			}
			if n := count(t, ctx, db.Pool, "SELECT count(*) FROM orders WHERE id = $1", "o-"+tc.name); n != 1 {
				t.Errorf("business row not committed after a rejected Add")
			}
		})
	}
	if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events"); n != 0 {
		t.Errorf("%d outbox rows written by rejected Adds", n)
	}
}

// Events commit or roll back with the caller's transaction, whatever
// executes the statement (pgx.Tx from BeginFunc or Begin, a pool, a single
// connection), and many events keep their order.
func TestWriterAtomicWithCallerTransaction(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	var w outbox.Writer
	many := make([]contracts.Envelope, 100)
	for i := range many {
		many[i] = event(t, fmt.Sprintf("order-%d", i%7), i)
	}
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()

	for _, tc := range []struct {
		name   string
		events []contracts.Envelope
		run    func(add func(outbox.Execer) error) error
		stored bool
	}{
		{"BeginFunc commits one", []contracts.Envelope{event(t, "order-x", 0)}, func(add func(outbox.Execer) error) error {
			return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return add(tx) })
		}, true},
		{"BeginFunc commits 100 in order", many, func(add func(outbox.Execer) error) error {
			return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return add(tx) })
		}, true},
		{"rollback leaves nothing", []contracts.Envelope{event(t, "o", 1), event(t, "o", 2)}, func(add func(outbox.Execer) error) error {
			tx, err := db.Pool.Begin(ctx)
			if err != nil {
				return err
			}
			if err := add(tx); err != nil {
				return err
			}
			return tx.Rollback(ctx)
		}, false},
		{"BeginFunc rolls back on the caller's error", []contracts.Envelope{event(t, "o", 3)}, func(add func(outbox.Execer) error) error {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if err := add(tx); err != nil {
					return err
				}
				return errors.New("business rule failed")
			})
			if err == nil || err.Error() != "business rule failed" {
				return fmt.Errorf("BeginFunc: %v", err)
			}
			return nil
		}, false},
		{"Queue: same round trip as the caller's statements", []contracts.Envelope{event(t, "q", 1), event(t, "q", 2)}, func(add func(outbox.Execer) error) error {
			return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				var b pgx.Batch
				b.Queue("SELECT 1")
				if err := w.Queue(ctx, &b, event(t, "q", 0), contracts.Envelope{}); err == nil || b.Len() != 1 {
					return fmt.Errorf("Queue of an invalid event: %v, %d statements queued", err, b.Len())
				}
				if err := add(queueExecer{&b}); err != nil {
					return err
				}
				if b.Len() != 2 {
					return fmt.Errorf("%d statements queued, want 2", b.Len())
				}
				return tx.SendBatch(ctx, &b).Close()
			})
		}, true},
		{"pool, own transaction", []contracts.Envelope{event(t, "o", 4), event(t, "p", 5)}, func(add func(outbox.Execer) error) error {
			return add(db.Pool)
		}, true},
		{"connection", []contracts.Envelope{event(t, "o", 6)}, func(add func(outbox.Execer) error) error {
			return add(conn)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(func(tx outbox.Execer) error {
				if q, ok := tx.(queueExecer); ok {
					return w.Queue(ctx, q.b, tc.events...)
				}
				return w.Add(ctx, tx, tc.events...)
			}); err != nil {
				t.Fatal(err)
			}
			rows, err := db.Pool.Query(ctx, "SELECT event_id::text FROM outbox_events WHERE event_id = ANY($1) ORDER BY id", ids(tc.events...))
			if err != nil {
				t.Fatal(err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			want := ids(tc.events...)
			if !tc.stored {
				want = nil
			}
			if !slices.Equal(got, want) {
				t.Errorf("stored %d events %v\nwant %d %v", len(got), got, len(want), want)
			}
		})
	}
}

// Each row holds the envelope, the event's columns and the derived (or
// configured) aggregate type; Add with no events does nothing.
func TestWriterColumns(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	e, err := contracts.New("identity.user.created", "user-42", "identity-service", map[string]any{"email": "ada@example.com"},
		contracts.WithOccurredAt(time.Date(2026, 11, 26, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))),
		contracts.WithCorrelationID("signup-7"))
	if err != nil {
		t.Fatal(err)
	}
	custom, err := contracts.New("identity.user.created", "user-43", "identity-service", nil)
	if err != nil {
		t.Fatal(err)
	}
	var w outbox.Writer
	if err := w.Add(ctx, db.Pool); err != nil {
		t.Errorf("Add with no events: %v", err)
	}
	if err := w.Add(ctx, db.Pool, e); err != nil {
		t.Fatal(err)
	}
	typed := outbox.NewWriter(outbox.WriterConfig{AggregateType: func(e contracts.Envelope) string { return "Customer" }})
	if err := typed.Add(ctx, db.Pool, custom); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		env     contracts.Envelope
		aggType string
	}{{e, "user"}, {custom, "Customer"}} {
		var payload []byte
		var eventType, aggType, aggID, headers string
		var occurred time.Time
		var published, failed bool
		var attempts int
		err := db.Pool.QueryRow(ctx, `SELECT payload, event_type, aggregate_type, aggregate_id, occurred_at, headers::text,
				published, failed, attempt_count FROM outbox_events WHERE event_id = $1`, tc.env.EventID).
			Scan(&payload, &eventType, &aggType, &aggID, &occurred, &headers, &published, &failed, &attempts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := contracts.Decode(payload)
		if err != nil {
			t.Fatalf("payload is not an envelope: %v", err)
		}
		assertSameEvent(t, got, tc.env)
		if eventType != tc.env.EventType || aggID != tc.env.AggregateID || aggType != tc.aggType ||
			!occurred.Equal(tc.env.OccurredAt) || headers != "{}" || published || failed || attempts != 0 {
			t.Errorf("row: %s %s %s %v %s %v %v %d", eventType, aggType, aggID, occurred, headers, published, failed, attempts)
		}
	}
	if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events"); n != 2 {
		t.Errorf("%d rows, want 2", n)
	}
}

// The caller's trace context is stored: the W3C headers by default, or
// whatever the configured propagator injects.
func TestWriterStoresTraceContext(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	spanCtx, span := tp.Tracer("test").Start(ctx, "checkout")
	defer span.End()
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	spanCtx = trace.ContextWithSpanContext(spanCtx, span.SpanContext().WithTraceState(ts))
	member, err := baggage.NewMember("tenant", "t1")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	spanCtx = baggage.ContextWithBaggage(spanCtx, bag)
	traceparent := fmt.Sprintf("00-%s-%s-01", span.SpanContext().TraceID(), span.SpanContext().SpanID())

	for _, tc := range []struct {
		name    string
		writer  *outbox.Writer
		ctx     context.Context
		headers map[string]string
	}{
		{"no span", &outbox.Writer{}, ctx, map[string]string{}},
		{"W3C by default", &outbox.Writer{}, spanCtx, map[string]string{"traceparent": traceparent, "tracestate": "vendor=abc"}},
		{"configured propagator", outbox.NewWriter(outbox.WriterConfig{
			Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		}), spanCtx, map[string]string{"traceparent": traceparent, "tracestate": "vendor=abc", "baggage": "tenant=t1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := event(t, "order-1", 1)
			if err := tc.writer.Add(tc.ctx, db.Pool, e); err != nil {
				t.Fatal(err)
			}
			var headers map[string]string
			var tpCol, tsCol *string
			if err := db.Pool.QueryRow(ctx, "SELECT headers, traceparent, tracestate FROM outbox_events WHERE event_id = $1", e.EventID).
				Scan(&headers, &tpCol, &tsCol); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(headers) != fmt.Sprint(tc.headers) {
				t.Errorf("headers %v, want %v", headers, tc.headers)
			}
			if deref(tpCol) != tc.headers["traceparent"] || deref(tsCol) != tc.headers["tracestate"] {
				t.Errorf("trace columns %q %q, want %q %q", deref(tpCol), deref(tsCol), tc.headers["traceparent"], tc.headers["tracestate"])
			}
		})
	}
}

// queueExecer marks a test case that uses Queue on b instead of Add.
type queueExecer struct{ b *pgx.Batch }

func (queueExecer) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errors.New("queueExecer: use Queue")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// A repeated event id is reported as ErrDuplicateEventID: within one call
// before anything is sent, across calls from the unique constraint.
func TestWriterDuplicateEventID(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	var w outbox.Writer
	e := event(t, "order-1", 1)
	if err := w.Add(ctx, db.Pool, e, event(t, "order-1", 2), e); !errors.Is(err, outbox.ErrDuplicateEventID) {
		t.Errorf("same id twice in one call: %v", err)
	}
	if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events"); n != 0 {
		t.Errorf("%d rows written", n)
	}
	if err := w.Add(ctx, db.Pool, e); err != nil {
		t.Fatal(err)
	}
	for _, batch := range [][]contracts.Envelope{{e}, {event(t, "order-1", 3), e}} {
		if err := w.Add(ctx, db.Pool, batch...); !errors.Is(err, outbox.ErrDuplicateEventID) {
			t.Errorf("id already stored (%d events): %v", len(batch), err)
		}
	}
	if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events"); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}

// DefaultAggregateType takes the aggregate segment of the event type.
func TestDefaultAggregateType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ eventType, want string }{
		{"identity.user.created", "user"},
		{"sales.order-line.added", "order-line"},
		{"nodots", ""},
	} {
		if got := outbox.DefaultAggregateType(contracts.Envelope{EventType: tc.eventType}); got != tc.want {
			t.Errorf("DefaultAggregateType(%q) = %q, want %q", tc.eventType, got, tc.want)
		}
	}
}

// A Writer writes the flat shape for Python consumers when asked, per writer
// or per event type, and the nested one otherwise; both decode to the same
// event.
func TestWriterShapes(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	user, err := contracts.New("identity.user.created", "user-42", "identity-service",
		map[string]any{"userId": 42, "email": "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	order, err := contracts.New("sales.order.placed", "order-7", "sales-service", map[string]int{"n": 7})
	if err != nil {
		t.Fatal(err)
	}
	perType := outbox.NewWriter(outbox.WriterConfig{
		ShapeByType: map[string]contracts.Shape{"identity.user.created": contracts.ShapeFlat}})
	if err := perType.Add(ctx, db.Pool, user, order); err != nil {
		t.Fatal(err)
	}
	allFlat := outbox.NewWriter(outbox.WriterConfig{Shape: contracts.ShapeFlat})
	order2 := order
	order2.EventID = uuid.New()
	if err := allFlat.Add(ctx, db.Pool, order2); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  contracts.Envelope
		flat bool
	}{{user, true}, {order, false}, {order2, true}} {
		var payload []byte
		if err := db.Pool.QueryRow(ctx, `SELECT payload FROM outbox_events WHERE event_id = $1`, tc.env.EventID).Scan(&payload); err != nil {
			t.Fatal(err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(payload, &top); err != nil {
			t.Fatal(err)
		}
		_, hasData := top["data"]
		if hasData == tc.flat {
			t.Errorf("%s: payload %s, want flat %v", tc.env.EventType, payload, tc.flat)
		}
		got, err := contracts.Decode(payload)
		if err != nil {
			t.Fatal(err)
		}
		assertSameEvent(t, got, tc.env)
	}
	// What the flat shape can not carry is refused before anything is sent.
	bad := user
	bad.CorrelationID = "not-a-uuid"
	if err := perType.Add(ctx, db.Pool, bad); err == nil {
		t.Error("a flat event with a non-UUID correlationId was written")
	}
}
