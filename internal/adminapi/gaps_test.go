package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// hangUpPublisher publishes the first page through the real publisher,
// then has the client hang up and returns only once the server has seen
// it (the request's context is done), so the rest of the bulk replay runs
// after the client is gone.
type hangUpPublisher struct {
	real   adminapi.QueuePublisher
	hangUp func()
	calls  atomic.Int32
	t      *testing.T
}

func (p *hangUpPublisher) PublishToQueues(ctx context.Context, msgs []adminapi.QueueMessage) []error {
	errs := p.real.PublishToQueues(ctx, msgs)
	if p.calls.Add(1) == 1 {
		p.hangUp()
		select {
		case <-ctx.Done():
		case <-time.After(15 * time.Second):
			p.t.Error("the server did not notice the client hanging up within 15 s")
		}
	}
	return errs
}

// TestBulkReplayClientHangsUp pins DESIGN.md §6 for a client that closes
// its connection midway through a large bulk replay: the admin_actions row
// is still written, its counts are what the queue actually received, the
// replayed rows are marked, and nothing is left claimed.
func TestBulkReplayClientHangsUp(t *testing.T) {
	t.Parallel()
	const n = 3000
	b := testenv.RabbitMQ(t)
	real := adminapi.NewAMQPPublisher(b.URL, "adminapi hang-up "+t.Name())
	t.Cleanup(func() { _ = real.Close() })
	ctx, hangUp := context.WithCancel(testCtx(t))
	pub := &hangUpPublisher{real: real, hangUp: hangUp, t: t}
	e := newEnv(t, func(c *adminapi.Config) { c.Queues = pub })
	ch := b.Channel(t)
	q := declareQueue(t, ch, b.Name("hangup"), nil)
	recordMany(t, e, q, n)
	srv := httptest.NewServer(e.api)
	t.Cleanup(srv.Close)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/v1/dead-letters/replay",
		strings.NewReader(fmt.Sprintf(`{"queue":%q,"limit":10000}`, q)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := srv.Client().Do(req); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("the request was answered (%d) although the client hung up", resp.StatusCode)
	}
	testenv.WaitFor(t, 30*time.Second, "the admin_actions row", func() bool {
		return e.audit(t, adminapi.ActionReplayDeadLetters).rows > 0
	})

	var replayed, pending, claimed int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT count(*) FILTER (WHERE status = 'replayed'),
		count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE claim_id IS NOT NULL) FROM dead_letters`).
		Scan(&replayed, &pending, &claimed); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the confirmed replays in the queue", func() bool { return queueDepth(t, ch, q) >= replayed })
	time.Sleep(200 * time.Millisecond) // a publish not counted would still be arriving
	depth := queueDepth(t, ch, q)
	rows := e.auditRows(t)
	t.Logf("rows: %d replayed, %d pending, %d claimed; queue %d; audit %+v", replayed, pending, claimed, depth, rows)
	if len(rows) != 1 {
		t.Fatalf("%d audit rows, want 1", len(rows))
	}
	a := rows[0]
	switch {
	case replayed < 1000 || replayed == n:
		t.Errorf("%d rows replayed; want the first page (1000) and not all %d", replayed, n)
	case claimed != 0 || pending != n-replayed:
		t.Errorf("rows: %d pending, %d claimed; want %d and 0", pending, claimed, n-replayed)
	case depth != replayed:
		t.Errorf("queue holds %d, %d rows are marked replayed", depth, replayed)
	case a.done != depth || a.matched < a.done+a.failed || a.principal != adminapi.AdminPrincipal:
		t.Errorf("audit %+v; want done = %d, what the queue holds", a, depth)
	case !strings.Contains(a.err, "client went away"):
		t.Errorf("audit error %q; want it to say the client went away", a.err)
	}
}

// topicDepth returns how many records topic holds, over its partitions.
func topicDepth(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	cl, err := sarama.NewClient(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Close() }()
	parts, err := cl.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range parts {
		off, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		n += off
	}
	return n
}

// TestReplayDestinationsKafka pins ADMIN_REPLAY_DESTINATIONS for Kafka: an
// outbox replay to an OUTBOX_TOPIC outside the patterns, and the replay of
// a Kafka dead letter whose topic is outside them (single and bulk), each
// answer 403 naming the topic, publish nothing, leave the dead letter
// pending and unclaimed, and are audited.
func TestReplayDestinationsKafka(t *testing.T) {
	t.Parallel()
	outboxTopic := testenv.UniqueName(t, "events")
	origin := testenv.UniqueName(t, "orders")
	brokers := testenv.Kafka(t, outboxTopic, origin)
	e := newEnv(t, withKafka(t, brokers, outboxTopic), func(c *adminapi.Config) {
		c.ReplayDestinations = []string{"allowed.*", "billing-*"}
	})
	e.writeEvent(t, "sales.order.placed")
	id := uuid.New()
	ids := e.record(t, deadletter.DeadLetter{
		EventID: id, Source: deadletter.SourceKafka, Origin: origin, Reason: "VALIDATE",
		OriginDetail: map[string]any{"dlq_topic": origin + ".dlq", "dlq_partition": 0, "dlq_offset": 3},
		Headers: deadletter.EncodeKafkaHeaders([]deadletter.KafkaHeader{
			{Key: []byte(contracts.KafkaHeaderID), Value: []byte(id.String())},
		}),
		Key: []byte("order-1"), Body: []byte(`{"n":1}`),
	})

	for _, tc := range []struct{ target, body, topic string }{
		{"/api/v1/replay?from_ts=2000-01-01T00:00:00Z&to_ts=2100-01-01T00:00:00Z", "", outboxTopic},
		{fmt.Sprintf("/api/v1/dead-letters/%d/replay", ids[0]), "", origin},
		{"/api/v1/dead-letters/replay", `{"source":"kafka","limit":10}`, origin},
	} {
		r := e.post(t, tc.target, tc.body)
		if r.status != http.StatusForbidden || !strings.Contains(r.errorMessage(t), tc.topic) {
			t.Errorf("%s: %d %s; want 403 naming %s", tc.target, r.status, r.body, tc.topic)
		}
	}
	for _, topic := range []string{outboxTopic, origin} {
		if n := topicDepth(t, brokers, topic); n != 0 {
			t.Errorf("%d records published to %s", n, topic)
		}
	}
	it, err := e.store.Get(testCtx(t), ids[0])
	if err != nil || it.Status != deadletter.StatusPending || !it.ClaimedAt.IsZero() || it.ReplayCount != 0 {
		t.Errorf("refused dead letter: %s claimed %v replays %d, %v", it.Status, it.ClaimedAt, it.ReplayCount, err)
	}
	a := e.auditRows(t)
	want := []struct{ action, topic string }{
		{adminapi.ActionReplayOutbox, outboxTopic},
		{adminapi.ActionReplayDeadLetter, origin},
		{adminapi.ActionReplayDeadLetters, origin},
	}
	if len(a) != len(want) {
		t.Fatalf("%d audit rows, want %d: %+v", len(a), len(want), a)
	}
	for i, w := range want {
		if a[i].action != w.action || !strings.Contains(a[i].err, w.topic) || a[i].done != 0 {
			t.Errorf("audit row %d = %+v; want %s refusing %s, nothing done", i, a[i], w.action, w.topic)
		}
	}
}

// TestRetryNothingPending pins POST /dlq/{event_id}/retry for a failed
// event none of whose dead letters is pending (here: discarded): the
// answer keeps the seed's retried and says only the flags were reset, the
// outbox row's flags are reset, nothing is published, and it is audited.
func TestRetryNothingPending(t *testing.T) {
	t.Parallel()
	b := testenv.RabbitMQ(t)
	e := newEnv(t, withQueues(t, b))
	ch := b.Channel(t)
	q := declareQueue(t, ch, b.Name("orders"), nil)
	ev := e.writeEvent(t, "sales.order.placed")
	dl := e.record(t, rabbitFor(q, ev.EventID))[0] // flags the outbox row failed
	if r := e.post(t, fmt.Sprintf("/api/v1/dead-letters/%d/discard", dl), `{"reason":"handled by hand"}`); r.status != http.StatusOK {
		t.Fatalf("discard: %d %s", r.status, r.body)
	}
	var failed bool
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT failed FROM outbox_events WHERE event_id = $1`, ev.EventID).Scan(&failed); err != nil || !failed {
		t.Fatalf("outbox row before the retry: failed %v, %v", failed, err)
	}

	r := e.post(t, "/api/v1/dlq/"+ev.EventID.String()+"/retry", "")
	if r.status != http.StatusOK {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	var said map[string]any
	r.decode(t, &said)
	replayed, isList := said["replayed_dead_letters"].([]any)
	if said["retried"] != true || said["flags_reset"] != true || !isList || len(replayed) != 0 || said["replay_id"] != nil {
		t.Errorf("retry said %s; want retried and flags_reset true, no dead letter re-sent, replay_id null", r.body)
	}
	if d, _ := said["detail"].(string); !strings.Contains(d, "only the outbox row's failed flags were reset") {
		t.Errorf("detail %q does not say only the flags were reset", d)
	}
	var failedAt *time.Time
	var msg *string
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT failed, failed_at, error_message FROM outbox_events WHERE event_id = $1`,
		ev.EventID).Scan(&failed, &failedAt, &msg); err != nil {
		t.Fatal(err)
	}
	if failed || failedAt != nil || msg != nil {
		t.Errorf("outbox row after retry: failed %v at %v msg %v", failed, failedAt, msg)
	}
	time.Sleep(200 * time.Millisecond) // a publish would be arriving
	if d := queueDepth(t, ch, q); d != 0 {
		t.Errorf("%d messages published", d)
	}
	it, err := e.store.Get(testCtx(t), dl)
	if err != nil || it.Status != deadletter.StatusDiscarded || it.ReplayCount != 0 {
		t.Errorf("discarded dead letter after retry: %s, %d replays, %v", it.Status, it.ReplayCount, err)
	}
	rows := e.auditRows(t)
	if len(rows) != 2 {
		t.Fatalf("%d audit rows, want discard and retry: %+v", len(rows), rows)
	}
	a := rows[1]
	var replayID *uuid.UUID
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT replay_id FROM admin_actions WHERE action = $1`, adminapi.ActionDLQRetry).Scan(&replayID); err != nil {
		t.Fatal(err)
	}
	if a.action != adminapi.ActionDLQRetry || a.principal != adminapi.AdminPrincipal || a.matched != 0 || a.done != 0 ||
		a.failed != 0 || a.err != "" || replayID != nil || !strings.Contains(a.target, ev.EventID.String()) {
		t.Errorf("audit row %+v (replay_id %v); want dlq.retry of %s, nothing re-sent, no error", a, replayID, ev.EventID)
	}
}

// TestStaleClaimReleased pins DESIGN.md §6's release of stale claims: a
// claim younger than the timeout is left alone; once older, the dead
// letters are pending and unclaimed again, one warning names them with
// the timeout, and one claims.release row by the system principal
// audits them.
func TestStaleClaimReleased(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := newEnv(t, func(c *adminapi.Config) {
		c.ClaimTimeout = time.Hour
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	ids := e.record(t, rabbit("orders.q", "sales.order.placed"), rabbit("orders.q", "sales.order.placed"),
		rabbit("orders.q", "sales.order.placed"))
	claim := uuid.New()
	for _, id := range ids[:2] {
		if _, err := e.store.Claim(testCtx(t), id, claim); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.api.ReleaseStaleClaims(testCtx(t)); err != nil || n != 0 {
		t.Fatalf("fresh claims: %d released, %v; want 0", n, err)
	}
	if logs.Len() != 0 || len(e.auditRows(t)) != 0 {
		t.Fatalf("nothing released, yet log %q / audit %+v", logs.String(), e.auditRows(t))
	}
	e.exec(t, `UPDATE dead_letters SET claimed_at = now() - interval '61 minutes' WHERE claim_id IS NOT NULL`)
	if n, err := e.api.ReleaseStaleClaims(testCtx(t)); err != nil || n != 2 {
		t.Fatalf("stale claims: %d released, %v; want 2", n, err)
	}
	var claimed, pending int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT count(*) FILTER (WHERE claim_id IS NOT NULL OR claimed_at IS NOT NULL),
		count(*) FILTER (WHERE status = 'pending') FROM dead_letters`).Scan(&claimed, &pending); err != nil {
		t.Fatal(err)
	}
	if claimed != 0 || pending != 3 {
		t.Errorf("after the release: %d claimed, %d pending; want 0 and 3", claimed, pending)
	}

	var line struct {
		Level, Msg   string
		Count        int
		ClaimTimeout string `json:"claim_timeout"`
		IDs          []int64
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if logs.Len() == 0 || len(lines) != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", len(lines), logs.String())
	}
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line.Level != "WARN" || !strings.Contains(line.Msg, "released stale replay claims") || line.Count != 2 ||
		line.ClaimTimeout != "1h0m0s" || fmt.Sprint(line.IDs) != fmt.Sprint(ids[:2]) {
		t.Errorf("log line %s; want a warning of 2 released claims %v with the 1h timeout", lines[0], ids[:2])
	}

	rows := e.auditRows(t)
	if len(rows) != 1 {
		t.Fatalf("%d audit rows, want 1: %+v", len(rows), rows)
	}
	a := rows[0]
	var target struct {
		IDs          []int64 `json:"ids"`
		ClaimTimeout string  `json:"claim_timeout"`
	}
	if err := json.Unmarshal([]byte(a.target), &target); err != nil {
		t.Fatal(err)
	}
	if a.action != adminapi.ActionReleaseClaims || a.principal != adminapi.SystemPrincipal || a.matched != 2 || a.done != 2 ||
		a.err != "" || fmt.Sprint(target.IDs) != fmt.Sprint(ids[:2]) || target.ClaimTimeout != "1h0m0s" {
		t.Errorf("audit row %+v; want claims.release by %s of %v", a, adminapi.SystemPrincipal, ids[:2])
	}
	if n, err := e.api.ReleaseStaleClaims(testCtx(t)); err != nil || n != 0 || len(e.auditRows(t)) != 1 {
		t.Errorf("second release: %d, %v, %d audit rows; want nothing more", n, err, len(e.auditRows(t)))
	}
}
