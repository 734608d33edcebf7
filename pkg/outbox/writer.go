package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/propagation"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// Execer is the part of a pgx transaction that [Writer.Add] uses. pgx.Tx
// satisfies it, and so do *pgx.Conn, *pgxpool.Pool and *pgxpool.Conn (each
// Add is then its own transaction).
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// ErrDuplicateEventID is wrapped by the error [Writer.Add] returns when an
// event's eventId is already in the outbox, or appears twice in one call. In
// the first case PostgreSQL has aborted the caller's transaction; in the
// second nothing was sent to the database.
var ErrDuplicateEventID = errors.New("duplicate event id")

// WriterConfig configures a [Writer]. The zero value is ready to use.
type WriterConfig struct {
	// Propagator injects the caller's trace context into the outbox row's
	// headers column. Nil means W3C Trace Context (traceparent, tracestate),
	// not the global propagator.
	Propagator propagation.TextMapPropagator
	// AggregateType returns the aggregate_type column (and the Kafka header
	// aggregateType) of an event; "" leaves it NULL. Nil means
	// [DefaultAggregateType]. It may be called from several goroutines at
	// once.
	AggregateType func(contracts.Envelope) string
	// Shape is the wire shape of the payload written for every event whose
	// type is not in ShapeByType. The zero value is
	// [contracts.ShapeNested]; [contracts.ShapeFlat] writes the Python
	// messagekit's shape, for Python consumers (DESIGN.md §3).
	Shape contracts.Shape
	// ShapeByType overrides Shape per event type, e.g.
	// {"identity.user.created": contracts.ShapeFlat} while other types stay
	// nested. It is read, never modified, and must not be changed while the
	// Writer is in use.
	ShapeByType map[string]contracts.Shape
	// Checker, when set, is asked about every event after it validated;
	// an error refuses the whole call, as an invalid event does. An event
	// catalog (catalog.Watcher or *catalog.Catalog from
	// pkg/contracts/catalog) is one. It may be called from several
	// goroutines at once.
	Checker Checker
}

// Checker accepts or refuses an event before it is written; Check returns
// nil to accept. See [WriterConfig.Checker].
type Checker interface {
	Check(contracts.Envelope) error
}

// DefaultAggregateType returns the middle segment of the event type, the
// aggregate in the <context>.<aggregate>.<action> naming that
// [contracts.EventTypePattern] enforces: "user" for "identity.user.created",
// "order" for "sales.order.placed".
func DefaultAggregateType(e contracts.Envelope) string {
	_, rest, ok := strings.Cut(e.EventType, ".")
	if !ok {
		return ""
	}
	aggregate, _, _ := strings.Cut(rest, ".")
	return aggregate
}

// Writer persists events in the caller's transaction (DESIGN.md §3–4). Build
// one with [NewWriter], or use the zero value for the defaults. A Writer is
// safe for concurrent use; it holds no connection.
type Writer struct {
	propagator    propagation.TextMapPropagator
	aggregateType func(contracts.Envelope) string
	shape         contracts.Shape
	shapeByType   map[string]contracts.Shape
	checker       Checker
}

// NewWriter returns a Writer configured by cfg.
func NewWriter(cfg WriterConfig) *Writer {
	return &Writer{propagator: cfg.Propagator, aggregateType: cfg.AggregateType,
		shape: cfg.Shape, shapeByType: cfg.ShapeByType, checker: cfg.Checker}
}

// shapeOf returns the wire shape of e's payload.
func (w *Writer) shapeOf(e contracts.Envelope) contracts.Shape {
	if w == nil {
		return contracts.ShapeNested
	}
	if s, ok := w.shapeByType[e.EventType]; ok {
		return s
	}
	return w.shape
}

const insertOne = `INSERT INTO outbox_events
	(event_id, event_type, aggregate_type, aggregate_id, payload, occurred_at, headers, traceparent, tracestate)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

// insertMany keeps the events' order: ids (the Relay's order inside one
// transaction) follow the argument order.
const insertMany = `INSERT INTO outbox_events
	(event_id, event_type, aggregate_type, aggregate_id, payload, occurred_at, headers, traceparent, tracestate)
	SELECT e.event_id, e.event_type, e.aggregate_type, e.aggregate_id, e.payload, e.occurred_at, $7, $8, $9
	FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[])
		WITH ORDINALITY AS e(event_id, event_type, aggregate_type, aggregate_id, payload, occurred_at, n)
	ORDER BY e.n`

// Add writes events to the outbox through tx, normally the caller's pgx.Tx,
// so that they commit or roll back with the caller's business writes: if tx
// rolls back no event exists, if it commits all do. Any number of events take
// one statement and one round trip. The trace context of ctx (W3C
// traceparent/tracestate by default) is stored with every event.
//
// Every event is validated first ([contracts.Envelope.Validate]); if one is
// invalid Add returns an error wrapping its [*contracts.ValidationError]
// (which names the field) and sends nothing, so tx stays usable. A repeated
// eventId wraps [ErrDuplicateEventID]. Other errors come from the database
// and leave tx aborted, as any failed statement does. Add with no events
// does nothing. With a [WriterConfig.Checker] (an event catalog), an event
// it refuses fails the call the same way, before anything is sent.
func (w *Writer) Add(ctx context.Context, tx Execer, events ...contracts.Envelope) error {
	sql, args, err := w.insert(ctx, events)
	if err != nil || sql == "" {
		return err
	}
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		return writeError(len(events), err)
	}
	if n := tag.RowsAffected(); n != int64(len(events)) {
		return fmt.Errorf("outbox: wrote %d rows for %d events", n, len(events))
	}
	return nil
}

// Batch is the part of *pgx.Batch that [Writer.Queue] uses.
type Batch interface {
	Queue(query string, arguments ...any) *pgx.QueuedQuery
}

// Queue is [Writer.Add] for callers that send their statements as a
// pgx.Batch: it validates events now, exactly like Add, and queues their
// insert on b, so that the events travel in the same round trip as the
// caller's own statements instead of one of their own. Send b inside the
// caller's transaction (tx.SendBatch); the insert's error, if any, comes
// from the batch's results as pgx reports it (for a repeated eventId, a
// *pgconn.PgError with code 23505). Queue with no events queues nothing.
func (w *Writer) Queue(ctx context.Context, b Batch, events ...contracts.Envelope) error {
	sql, args, err := w.insert(ctx, events)
	if err != nil || sql == "" {
		return err
	}
	n := len(events)
	b.Queue(sql, args...).Exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() != int64(n) {
			return fmt.Errorf("outbox: wrote %d rows for %d events", tag.RowsAffected(), n)
		}
		return nil
	})
	return nil
}

// writeError wraps a database error of the insert.
func writeError(n int, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "outbox_events_event_id_key" {
		return fmt.Errorf("outbox: write %d events: %w: %w", n, ErrDuplicateEventID, err)
	}
	return fmt.Errorf("outbox: write %d events: %w", n, err)
}

// insert validates events and returns the statement writing them; "" for
// no events.
func (w *Writer) insert(ctx context.Context, events []contracts.Envelope) (string, []any, error) {
	if len(events) == 0 {
		return "", nil, nil
	}
	aggType := DefaultAggregateType
	if w != nil && w.aggregateType != nil {
		aggType = w.aggregateType
	}
	ids := make([]uuid.UUID, len(events))
	types := make([]string, len(events))
	aggTypes := make([]*string, len(events))
	aggIDs := make([]string, len(events))
	payloads := make([][]byte, len(events))
	occurred := make([]time.Time, len(events))
	for i, e := range events {
		payload, err := e.MarshalShape(w.shapeOf(e)) // validates
		if err == nil && w != nil && w.checker != nil {
			err = w.checker.Check(e)
		}
		if err != nil {
			return "", nil, fmt.Errorf("outbox: event %d of %d: %w", i+1, len(events), err)
		}
		ids[i], types[i], aggIDs[i], payloads[i] = e.EventID, e.EventType, e.AggregateID, payload
		occurred[i] = e.OccurredAt.UTC().Truncate(time.Microsecond)
		if t := aggType(e); t != "" {
			aggTypes[i] = &t
		}
	}
	if len(events) > 1 {
		seen := make(map[uuid.UUID]struct{}, len(events))
		for _, id := range ids {
			if _, dup := seen[id]; dup {
				return "", nil, fmt.Errorf("outbox: eventId %s appears twice: %w", id, ErrDuplicateEventID)
			}
			seen[id] = struct{}{}
		}
	}
	headers, traceparent, tracestate := w.traceHeaders(ctx)
	if len(events) == 1 {
		return insertOne, []any{ids[0], types[0], aggTypes[0], aggIDs[0], payloads[0], occurred[0],
			headers, traceparent, tracestate}, nil
	}
	return insertMany, []any{ids, types, aggTypes, aggIDs, payloads, occurred,
		headers, traceparent, tracestate}, nil
}

var emptyHeaders = []byte("{}")

// traceHeaders returns the headers column (a JSON object) and the trace
// columns for the trace context of ctx.
func (w *Writer) traceHeaders(ctx context.Context) (headers []byte, traceparent, tracestate *string) {
	var prop propagation.TextMapPropagator = propagation.TraceContext{}
	if w != nil && w.propagator != nil {
		prop = w.propagator
	}
	carrier := propagation.MapCarrier{}
	prop.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return emptyHeaders, nil, nil
	}
	if v, ok := carrier[contracts.KafkaHeaderTraceparent]; ok {
		traceparent = &v
	}
	if v, ok := carrier[contracts.KafkaHeaderTracestate]; ok && v != "" {
		tracestate = &v
	}
	headers, err := json.Marshal(map[string]string(carrier))
	if err != nil { // a map of strings always encodes
		return emptyHeaders, traceparent, tracestate
	}
	return headers, traceparent, tracestate
}
