package testenv

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/migrate"
)

// PythonSeedDDL is the schema the Python messagekit's SQLAlchemy models
// create on PostgreSQL (infrastructure/persistence/orm_models: outbox_orm.py
// and processed_message_orm.py): event ids as varchar(36), payload as json,
// and only client-side defaults.
const PythonSeedDDL = `
CREATE TABLE outbox_events (
	event_id VARCHAR(36) NOT NULL,
	event_type VARCHAR(255) NOT NULL,
	aggregate_id VARCHAR(255) NOT NULL,
	payload JSON NOT NULL,
	occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
	published BOOLEAN NOT NULL,
	failed BOOLEAN NOT NULL,
	attempt_count INTEGER NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	published_at TIMESTAMP WITH TIME ZONE,
	failed_at TIMESTAMP WITH TIME ZONE,
	error_message TEXT,
	PRIMARY KEY (event_id)
);
CREATE INDEX idx_outbox_unpublished ON outbox_events (published, created_at);
CREATE TABLE processed_messages (
	consumer_name VARCHAR(255) NOT NULL,
	event_id VARCHAR(36) NOT NULL,
	processed_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (consumer_name, event_id)
);`

// PythonSeedPostgres is Postgres with [PythonSeedDDL] applied, and with
// messagekit's migrations after it when migrated is true.
func PythonSeedPostgres(t testing.TB, migrated bool) *Database {
	t.Helper()
	db := Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.Pool.Exec(ctx, PythonSeedDDL); err != nil {
		t.Fatalf("testenv: seed DDL: %v", err)
	}
	if migrated {
		if err := migrate.Up(ctx, db.URL, nil); err != nil {
			t.Fatalf("testenv: migrate %s: %v", db.Name, err)
		}
	}
	return db
}

// InsertPythonEvent writes the flat envelope payload (the text of
// BaseEvent.to_message() as SQLAlchemy's JSON column stores it) the way the
// Python messagekit's outbox repository does: event_id, event_type,
// aggregate_id and occurred_at taken from it, every flag and count given
// explicitly, created_at now.
func InsertPythonEvent(t testing.TB, db *Database, payload []byte) {
	t.Helper()
	var e struct {
		EventID     string    `json:"eventId"`
		EventType   string    `json:"eventType"`
		AggregateID string    `json:"aggregateId"`
		OccurredAt  time.Time `json:"occurredAt"`
	}
	if err := json.Unmarshal(payload, &e); err != nil {
		t.Fatalf("testenv: payload: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := db.Pool.Exec(ctx, `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at,
			published, failed, attempt_count, created_at, published_at, failed_at, error_message)
		VALUES ($1, $2, $3, $4::text::json, $5, false, false, 0, now(), NULL, NULL, NULL)`,
		e.EventID, e.EventType, e.AggregateID, string(payload), e.OccurredAt)
	if err != nil {
		t.Fatalf("testenv: insert Python outbox row: %v", err)
	}
}
