package bookkeeper

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
	"github.com/firstunicorn/messagekit-go/pkg/retention"
)

// OutboxMode says how outbox rows reach Kafka, and so which of them the
// pruner may delete (DESIGN.md §12, ADR 0024).
type OutboxMode string

// Outbox modes.
const (
	// OutboxAuto decides at every run: CDC when outbox_events is in a
	// PostgreSQL publication (Debezium reads it), else Relay.
	OutboxAuto OutboxMode = "auto"
	// OutboxRelay prunes published rows only: outbox.Relay still has to
	// send the others.
	OutboxRelay OutboxMode = "relay"
	// OutboxCDC prunes every row: the WAL carried the event to Debezium
	// long before the retention ends.
	OutboxCDC OutboxMode = "cdc"
)

// Retention is the bookkeeper's retention per table (DESIGN.md §5, §12);
// zero keeps a table's rows forever.
type Retention struct {
	ProcessedMessages time.Duration
	DeadLetters       time.Duration
	// Audit applies to admin_actions, or to replays on a database migrated
	// before admin_actions replaced it.
	Audit  time.Duration
	Outbox time.Duration
	// OutboxMode is empty or one of the OutboxMode values; empty means
	// OutboxAuto.
	OutboxMode OutboxMode
	// BatchSize bounds the rows of one DELETE on processed_messages,
	// outbox_events and the audit; zero means 1000. Dead letters, which
	// carry bodies, go deadletter.DefaultPruneBatch at a time.
	BatchSize int
}

// RetentionDB is what pruning needs of PostgreSQL; *pgxpool.Pool satisfies
// it.
type RetentionDB interface {
	dedup.DB
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Tables returns the tables r prunes on db, in the order a run prunes
// them; a table kept forever is left out. It fails on an unknown
// OutboxMode or a negative duration or batch size.
func (r Retention) Tables(db RetentionDB, log *slog.Logger) ([]retention.Table, error) {
	for name, d := range map[string]time.Duration{
		"processed_messages": r.ProcessedMessages, "dead_letters": r.DeadLetters, "audit": r.Audit, "outbox": r.Outbox,
	} {
		if d < 0 {
			return nil, fmt.Errorf("bookkeeper: retention of %s is negative (%v)", name, d)
		}
	}
	switch r.OutboxMode {
	case "":
		r.OutboxMode = OutboxAuto
	case OutboxAuto, OutboxRelay, OutboxCDC:
	default:
		return nil, fmt.Errorf("bookkeeper: outbox mode %q: want %s, %s or %s", r.OutboxMode, OutboxAuto, OutboxRelay, OutboxCDC)
	}
	if r.BatchSize < 0 {
		return nil, fmt.Errorf("bookkeeper: prune batch size %d is negative", r.BatchSize)
	}
	if r.BatchSize == 0 {
		r.BatchSize = 1000
	}
	var ts []retention.Table
	if r.ProcessedMessages > 0 {
		ts = append(ts, dedup.NewPostgres(db).RetentionTable(r.ProcessedMessages, r.BatchSize))
	}
	if r.DeadLetters > 0 {
		ts = append(ts, retention.Table{Name: "dead_letters", Prune: func(ctx context.Context) (int64, error) {
			return deadletter.Prune(ctx, db, r.DeadLetters, 0)
		}})
	}
	if r.Audit > 0 {
		ts = append(ts, retention.Table{Name: "admin_actions", Prune: func(ctx context.Context) (int64, error) {
			return pruneAudit(ctx, db, r.Audit, r.BatchSize)
		}})
	}
	if r.Outbox > 0 {
		ts = append(ts, retention.Table{Name: "outbox_events", Prune: func(ctx context.Context) (int64, error) {
			cdc, err := r.outboxCDC(ctx, db)
			if err != nil {
				return 0, err
			}
			log.Debug("pruning the outbox", "cdc", cdc)
			// "Published ones" in Relay mode: failed rows were published
			// (a consumer dead-lettered them) and their dead letters keep
			// the bodies.
			return outbox.Prune(ctx, db, r.Outbox, outbox.PruneOptions{CDC: cdc, IncludeFailed: true, BatchSize: r.BatchSize})
		}})
	}
	return ts, nil
}

// outboxCDC reports whether the outbox is read by CDC: as configured, or,
// in OutboxAuto, whether a publication includes outbox_events (a FOR ALL
// TABLES one included).
func (r Retention) outboxCDC(ctx context.Context, db RetentionDB) (bool, error) {
	switch r.OutboxMode {
	case OutboxRelay:
		return false, nil
	case OutboxCDC:
		return true, nil
	}
	var published bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables
		WHERE schemaname = current_schema() AND tablename = 'outbox_events')`).Scan(&published)
	if err != nil {
		return false, fmt.Errorf("bookkeeper: is outbox_events published: %w", err)
	}
	return published, nil
}

// auditTables are the audit tables and their time columns, newest first:
// admin_actions replaced replays in migration 00004, and a database may
// not have been migrated that far yet.
var auditTables = []struct{ table, column string }{
	{"admin_actions", "at"},
	{"replays", "requested_at"},
}

// pruneAudit deletes the audit rows older than olderThan from whichever
// audit tables exist, batch rows a statement.
func pruneAudit(ctx context.Context, db RetentionDB, olderThan time.Duration, batch int) (int64, error) {
	var total int64
	for _, a := range auditTables {
		var exists bool
		if err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, a.table).Scan(&exists); err != nil {
			return total, fmt.Errorf("bookkeeper: does %s exist: %w", a.table, err)
		}
		if !exists {
			continue
		}
		query := `DELETE FROM ` + a.table + ` WHERE id = ANY (ARRAY(
			SELECT id FROM ` + a.table + ` WHERE ` + a.column + ` < now() - $1::bigint * interval '1 microsecond'
			LIMIT $2 FOR UPDATE SKIP LOCKED))`
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			tag, err := db.Exec(ctx, query, olderThan.Microseconds(), batch)
			if err != nil {
				return total, fmt.Errorf("bookkeeper: prune %s after %d rows: %w", a.table, total, err)
			}
			total += tag.RowsAffected()
			if tag.RowsAffected() < int64(batch) {
				break
			}
		}
	}
	return total, nil
}
