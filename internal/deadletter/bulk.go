package deadletter

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The bulk upsert: one statement for every dead letter of a batch whose
// identity (and event id) no other dead letter of the batch shares — PostgreSQL
// refuses to update one row twice in a statement. Same semantics as the
// single-row upsert; a repeated receipt (dup) is left out of the INSERT, and
// comes back with a NULL id.
//
// Parameters are parallel arrays, in lock order: $1 idx (the dead letter's
// index in the batch), $2 event_id, $3 source, $4 origin,
// $5 origin_detail, $6 reason, $7 error_message, $8 event_type, $9 headers,
// $10 message_key, $11 body, $12 delivery marker, $13 maybe repeated.
const bulkHead = `WITH input AS (
	SELECT t.*%s FROM unnest($1::int[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[],
		$8::text[], $9::jsonb[], $10::bytea[], $11::bytea[], $12::text[], $13::boolean[]) WITH ORDINALITY
		AS t(idx, event_id, source, origin, detail, reason, error_message, event_type, headers, message_key, body,
			delivery, maybe_repeated, pos)
), dup AS (
	SELECT i.idx, COALESCE(i.maybe_repeated AND i.delivery IS NOT NULL
		AND (d.origin_detail->'deliveries') ? i.delivery, false) AS is_dup
	FROM input i LEFT JOIN dead_letters d ON d.source = i.source AND d.origin = i.origin AND %s
)%s, ins AS (
	INSERT INTO dead_letters AS d (event_id, source, origin, origin_detail, reason, error_message, event_type,
		headers, message_key, body, outbox_found)
	SELECT i.event_id, i.source, i.origin, i.detail || jsonb_build_object('deliveries',
			CASE WHEN i.delivery IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(i.delivery) END),
		i.reason, i.error_message, i.event_type, i.headers, i.message_key, i.body, %s
	FROM input i JOIN dup USING (idx) WHERE NOT dup.is_dup
	ORDER BY i.pos -- the lock order the arrays were built in
	ON CONFLICT %s DO UPDATE SET
		death_count = d.death_count + 1,
		last_seen_at = now(),
		status = CASE WHEN d.status = 'replayed' THEN 'pending' ELSE d.status END,
		reason = EXCLUDED.reason,
		error_message = EXCLUDED.error_message,
		event_type = COALESCE(EXCLUDED.event_type, d.event_type),
		headers = EXCLUDED.headers,
		message_key = EXCLUDED.message_key,
		body = EXCLUDED.body,
		origin_detail = EXCLUDED.origin_detail || jsonb_build_object('deliveries', jsonb_path_query_array(
			EXCLUDED.origin_detail->'deliveries' || COALESCE(d.origin_detail->'deliveries', '[]'::jsonb), '$[0 to %d]')),
		outbox_found = d.outbox_found OR EXCLUDED.outbox_found
	RETURNING id, death_count, status, xmax = 0 AS inserted, source, origin, event_id, body_sha256
)
SELECT i.idx, ins.id, ins.death_count, ins.status, ins.inserted, %s
FROM input i LEFT JOIN ins ON ins.source = i.source AND ins.origin = i.origin AND %s`

const bulkFlag = `, flag AS (
	UPDATE outbox_events o SET failed = true, failed_at = now(), error_message = i.error_message,
		attempt_count = o.attempt_count + 1
	FROM input i JOIN dup USING (idx)
	WHERE o.event_id = messagekit_outbox_event_id(i.event_id) AND NOT dup.is_dup
	RETURNING i.idx
)`

var (
	bulkByEvent = fmt.Sprintf(bulkHead, "", "d.event_id = i.event_id", bulkFlag,
		"EXISTS (SELECT 1 FROM flag f WHERE f.idx = i.idx)",
		"(source, origin, event_id) WHERE event_id IS NOT NULL", MaxDeliveries-1,
		"EXISTS (SELECT 1 FROM flag f WHERE f.idx = i.idx)", "ins.event_id = i.event_id")
	bulkByBody = fmt.Sprintf(bulkHead, ", sha256(t.body) AS body_hash",
		"d.event_id IS NULL AND d.body_sha256 = i.body_hash", "", "false",
		"(source, origin, body_sha256) WHERE event_id IS NULL", MaxDeliveries-1,
		"false", "ins.event_id IS NULL AND ins.body_sha256 = i.body_hash")
)

// bulkArgs are the parallel arrays of one bulk statement.
type bulkArgs struct {
	idx                             []int32
	eventIDs                        []pgtype.UUID
	sources, origins, reasons       []string
	details, headers, keys, bodies  [][]byte
	errMsgs, eventTypes, deliveries []pgtype.Text
	maybe                           []bool
}

func (a *bulkArgs) add(i int, p *prepared) {
	a.idx = append(a.idx, int32(i))
	a.eventIDs = append(a.eventIDs, pgtype.UUID{Bytes: p.dl.EventID, Valid: p.dl.EventID != uuid.Nil})
	a.sources = append(a.sources, string(p.dl.Source))
	a.origins = append(a.origins, p.dl.Origin)
	a.details = append(a.details, p.detail)
	a.reasons = append(a.reasons, p.dl.Reason)
	a.errMsgs = append(a.errMsgs, text(p.dl.ErrorMessage))
	a.eventTypes = append(a.eventTypes, text(p.dl.EventType))
	a.headers = append(a.headers, p.headers)
	a.keys = append(a.keys, p.dl.Key)
	a.bodies = append(a.bodies, p.dl.Body)
	a.deliveries = append(a.deliveries, text(p.dl.Delivery))
	a.maybe = append(a.maybe, p.dl.MaybeRepeated)
}

func (a *bulkArgs) args() []any {
	return []any{a.idx, a.eventIDs, a.sources, a.origins, a.details, a.reasons, a.errMsgs, a.eventTypes,
		a.headers, a.keys, a.bodies, a.deliveries, a.maybe}
}

func text(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

// split sorts ps into the bulk statements and the dead letters that share
// their identity or event id with another of the batch, which are written
// one by one afterwards, in batch order.
func split(ps []prepared, order []int) (byEvent, byBody *bulkArgs, single []int) {
	type key struct {
		source Source
		origin string
		id     uuid.UUID
		body   [sha256.Size]byte
	}
	idents := make(map[key]int, len(ps))
	events := make(map[uuid.UUID]int, len(ps))
	keys := make([]key, len(ps))
	for i := range ps {
		dl := &ps[i].dl
		k := key{source: dl.Source, origin: dl.Origin, id: dl.EventID}
		if dl.EventID == uuid.Nil {
			k.body = sha256.Sum256(dl.Body)
		} else {
			events[dl.EventID]++
		}
		keys[i] = k
		idents[k]++
	}
	byEvent, byBody = &bulkArgs{}, &bulkArgs{}
	for _, i := range order {
		id := ps[i].dl.EventID
		switch {
		case idents[keys[i]] > 1 || (id != uuid.Nil && events[id] > 1):
			single = append(single, i)
		case id == uuid.Nil:
			byBody.add(i, &ps[i])
		default:
			byEvent.add(i, &ps[i])
		}
	}
	slices.Sort(single)
	return byEvent, byBody, single
}

// recordBulk writes ps in one transaction with at most two bulk statements
// plus one statement per dead letter that shares its identity within the
// batch. A content error gives no index: the caller falls back to
// recordOnce to find the culprit.
func (s *Store) recordBulk(ctx context.Context, ps []prepared, order []int) ([]Recorded, error) {
	byEvent, byBody, single := split(ps, order)
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("record dead letters: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	var b pgx.Batch
	locking := queueOutboxLock(&b, ps)
	bulks := 0
	for _, q := range []struct {
		sql  string
		args *bulkArgs
	}{{bulkByEvent, byEvent}, {bulkByBody, byBody}} {
		if len(q.args.idx) > 0 {
			b.Queue(q.sql, q.args.args()...)
			bulks++
		}
	}
	for _, i := range single {
		queueSingle(&b, &ps[i])
	}
	br := tx.SendBatch(ctx, &b)
	if locking {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("record dead letters: lock outbox rows: %w", err)
		}
	}
	res := make([]Recorded, len(ps))
	for range bulks {
		rows, err := br.Query()
		if err == nil {
			err = scanBulk(rows, res)
		}
		if err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("record %d dead letters: %w", len(ps), err)
		}
	}
	for _, i := range single {
		if err := scanSingle(br.QueryRow(), &res[i]); err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("record dead letter %d (%s %s): %w", i, ps[i].dl.Source, ps[i].dl.Origin, err)
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("record dead letters: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("record dead letters: commit: %w", err)
	}
	return res, nil
}

func scanBulk(rows pgx.Rows, res []Recorded) error {
	defer rows.Close()
	for rows.Next() {
		var (
			idx        int32
			id         pgtype.Int8
			deathCount pgtype.Int4
			status     pgtype.Text
			inserted   pgtype.Bool
			flagged    bool
		)
		if err := rows.Scan(&idx, &id, &deathCount, &status, &inserted, &flagged); err != nil {
			return err
		}
		if idx < 0 || int(idx) >= len(res) {
			return errors.New("bulk upsert returned an unknown index")
		}
		if !id.Valid {
			res[idx] = Recorded{Duplicate: true}
			continue
		}
		res[idx] = Recorded{ID: id.Int64, DeathCount: int(deathCount.Int32), Status: Status(status.String),
			Inserted: inserted.Bool, OutboxFlagged: flagged}
	}
	return rows.Err()
}
