package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// horizon is the publishing horizon: the oldest transaction of the
// statement's snapshot that is still running and may belong to this
// database, or the snapshot's xmax when there is none. It is
// pg_snapshot_xmin(pg_current_snapshot()) without the transactions that
// pg_stat_activity (or pg_prepared_xacts) shows in other databases, which
// can not write this outbox: a long transaction elsewhere on the server
// does not hold the Relay back. A transaction that ended before
// pg_stat_activity was read is not recognised and counts as this
// database's, so the horizon errs only on the early side.
const horizon = `(SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
		FROM pg_snapshot_xip(pg_current_snapshot()) AS x
		WHERE xid(x) NOT IN (
			SELECT backend_xid FROM pg_stat_activity
			WHERE backend_xid IS NOT NULL
			  AND datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
			UNION ALL
			SELECT transaction FROM pg_prepared_xacts WHERE database <> current_database()))`

// The rows a batch may publish: committed (below the horizon), not yet
// published, not dead-lettered, in publish order; fetchAfter starts after
// the previous batch, whose rows may still be being marked.
const (
	fetchColumns = `SELECT id, transaction_id::text AS txid, event_id::text AS event_id_text, event_type, aggregate_type, aggregate_id, payload, headers, created_at
	FROM outbox_events
	WHERE NOT published AND NOT failed
	  AND transaction_id < ` + horizon
	fetchPending = fetchColumns + `
	ORDER BY transaction_id, id
	LIMIT $1`
	fetchAfter = fetchColumns + `
	  AND (transaction_id, id) > ($2::xid8, $3::bigint)
	ORDER BY transaction_id, id
	LIMIT $1`
)

// markRows records a batch's outcome in one statement: ok rows published,
// rows with an error message dead-lettered, every listed row's attempt
// counted.
const markRows = `UPDATE outbox_events AS o SET
		published     = r.ok,
		published_at  = CASE WHEN r.ok THEN now() ELSE o.published_at END,
		attempt_count = o.attempt_count + 1,
		failed        = o.failed OR r.err IS NOT NULL,
		failed_at     = CASE WHEN r.err IS NOT NULL THEN now() ELSE o.failed_at END,
		error_message = CASE WHEN r.err IS NOT NULL THEN r.err ELSE o.error_message END
	FROM unnest($1::bigint[], $2::bool[], $3::text[]) AS r(id, ok, err)
	WHERE o.id = r.id AND NOT o.published`

type pendingRow struct {
	id            int64
	txid          string // xid8 as text
	eventID       string
	eventType     string
	aggregateType *string
	aggregateID   string
	payload       []byte
	headers       []byte
	createdAt     time.Time
}

// rowKey is a position in publish order.
type rowKey struct {
	txid string
	id   int64
}

type outcome uint8

const (
	notAttempted outcome = iota
	published
	retriable
	permanent
)

// batchResult is what Kafka made of a batch.
type batchResult struct {
	outcomes []outcome
	errs     []error
	retry    int // records that failed and stay pending
}

func (r *Relay) fetch(ctx context.Context, conn *pgx.Conn, after *rowKey) ([]pendingRow, error) {
	var rs pgx.Rows
	var err error
	if after == nil {
		rs, err = conn.Query(ctx, fetchPending, r.cfg.BatchSize)
	} else {
		rs, err = conn.Query(ctx, fetchAfter, r.cfg.BatchSize, after.txid, after.id)
	}
	if err != nil {
		return nil, fmt.Errorf("read pending rows: %w", err)
	}
	defer rs.Close()
	out := make([]pendingRow, 0, 64)
	for rs.Next() {
		var p pendingRow
		if err := rs.Scan(&p.id, &p.txid, &p.eventID, &p.eventType, &p.aggregateType, &p.aggregateID, &p.payload, &p.headers, &p.createdAt); err != nil {
			return nil, fmt.Errorf("read pending rows: %w", err)
		}
		out = append(out, p)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read pending rows: %w", err)
	}
	return out, nil
}

// publish sends rows in rounds: round k holds the k-th row of every key
// whose earlier rows were acknowledged, so a key never has two records in
// flight and a failed record stops its key for this batch. It logs and
// counts the failures.
func (r *Relay) publish(ctx context.Context, rows []pendingRow) batchResult {
	r.metrics.batch.Observe(float64(len(rows)))
	res := batchResult{outcomes: make([]outcome, len(rows)), errs: make([]error, len(rows))}
	byKey := make(map[string][]int, len(rows))
	var keys []string
	for i := range rows {
		k := rows[i].aggregateID
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	round := make([]int, 0, len(keys))
	records := make([]Record, 0, len(keys))
	for next := 0; ctx.Err() == nil; next++ {
		round, records = round[:0], records[:0]
		live := keys[:0]
		for _, k := range keys {
			idx := byKey[k]
			if next >= len(idx) {
				continue
			}
			if next > 0 && res.outcomes[idx[next-1]] == retriable {
				continue // blocked behind a failed record of its aggregate
			}
			live = append(live, k)
			round = append(round, idx[next])
			records = append(records, r.record(&rows[idx[next]]))
		}
		keys = live
		if len(round) == 0 {
			break
		}
		errs := r.pub.Publish(ctx, records)
		if errs != nil && len(errs) != len(records) {
			err := fmt.Errorf("outbox: publisher returned %d results for %d records", len(errs), len(records))
			errs = slices.Repeat([]error{err}, len(records))
		}
		for j, i := range round {
			var err error
			if errs != nil {
				err = errs[j]
			}
			switch {
			case err == nil:
				res.outcomes[i] = published
			case IsPermanent(err):
				res.outcomes[i], res.errs[i] = permanent, err
				r.metrics.errors.WithLabelValues("permanent").Inc()
				r.log.ErrorContext(ctx, "outbox relay: Kafka can never accept this event; row marked failed",
					slog.String("event_id", rows[i].eventID), slog.String("event_type", rows[i].eventType), slog.Any("error", err))
			default:
				res.outcomes[i], res.errs[i] = retriable, err
				res.retry++
			}
		}
	}
	if res.retry > 0 {
		r.metrics.errors.WithLabelValues("retriable").Add(float64(res.retry))
		if ctx.Err() == nil {
			first := slices.IndexFunc(res.outcomes, func(o outcome) bool { return o == retriable })
			r.log.WarnContext(ctx, "outbox relay: Kafka write failed, rows stay pending",
				slog.Int("failed", res.retry), slog.String("event_id", rows[first].eventID), slog.Any("error", res.errs[first]))
		}
	}
	return res
}

// markJob is a batch's outcome being written on a pool connection.
type markJob struct {
	done chan struct{} // closed when err is set
	err  error
}

func (m *markJob) wait() error {
	<-m.done
	return m.err
}

// isDone reports whether wait would return at once.
func (m *markJob) isDone() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// mark records res in the background. Rows Kafka acknowledged are marked
// even when ctx ended meanwhile, so a shutdown does not re-send them.
func (r *Relay) mark(ctx context.Context, rows []pendingRow, res batchResult) *markJob {
	ids := make([]int64, 0, len(rows))
	oks := make([]bool, 0, len(rows))
	msgs := make([]*string, 0, len(rows))
	var acked []time.Time
	for i, o := range res.outcomes {
		if o == notAttempted {
			continue
		}
		ids = append(ids, rows[i].id)
		oks = append(oks, o == published)
		var msg *string
		switch o {
		case published:
			acked = append(acked, rows[i].createdAt)
		case permanent:
			m := res.errs[i].Error()
			msg = &m
		}
		msgs = append(msgs, msg)
	}
	job := &markJob{done: make(chan struct{})}
	if len(ids) == 0 {
		close(job.done)
		return job
	}
	markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	go func() {
		defer close(job.done)
		defer cancel()
		if err := r.exec(markCtx, markRows, ids, oks, msgs); err != nil {
			job.err = fmt.Errorf("mark %d rows (%d published to Kafka, will be published again): %w", len(ids), len(acked), err)
			return
		}
		now := time.Now()
		for _, created := range acked {
			r.metrics.latency.Observe(now.Sub(created).Seconds())
		}
		r.metrics.published.Add(float64(len(acked)))
	}()
	return job
}

// exec runs one statement on a connection from the pool.
func (r *Relay) exec(ctx context.Context, sql string, args ...any) error {
	c, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	_, err = c.Exec(ctx, sql, args...)
	return err
}

// reservedHeaders are written by the Relay from columns; the headers column
// can not override them.
var reservedHeaders = []string{contracts.KafkaHeaderID, contracts.KafkaHeaderEventType,
	contracts.KafkaHeaderAggregateType, contracts.KafkaHeaderReplayID}

func (r *Relay) record(p *pendingRow) Record {
	h := make([]Header, 0, 5)
	h = append(h,
		Header{Key: contracts.KafkaHeaderID, Value: []byte(p.eventID)},
		Header{Key: contracts.KafkaHeaderEventType, Value: []byte(p.eventType)})
	if p.aggregateType != nil && *p.aggregateType != "" {
		h = append(h, Header{Key: contracts.KafkaHeaderAggregateType, Value: []byte(*p.aggregateType)})
	}
	h = append(h, storedHeaders(p.headers)...)
	return Record{Topic: r.cfg.Topic, Key: []byte(p.aggregateID), Value: p.payload, Headers: h}
}

// storedHeaders turns the headers column (a JSON object, normally the
// writer's traceparent and tracestate) into record headers: its string
// members except reserved names, sorted by name. Anything else is ignored.
func storedHeaders(raw []byte) []Header {
	if len(raw) <= 2 { // "{}"
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil
	}
	var out []Header
	for k, v := range m {
		s, ok := v.(string)
		if !ok || slices.Contains(reservedHeaders, k) {
			continue
		}
		out = append(out, Header{Key: k, Value: []byte(s)})
	}
	slices.SortFunc(out, func(a, b Header) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out
}

func (r *Relay) refreshGauges(ctx context.Context, conn *pgx.Conn) error {
	s, err := ReadStats(ctx, conn, StatsOptions{})
	if err != nil {
		return err
	}
	r.metrics.pending.Set(float64(s.Pending))
	r.metrics.oldest.Set(s.OldestPendingAge.Seconds())
	return nil
}

// backoff is capped exponential backoff with ±20% jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	jitter := time.Duration(rand.Int64N(int64(b.cur)/5+1)) * 2
	return b.cur - b.cur/5 + jitter
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
