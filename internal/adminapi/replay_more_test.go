package adminapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// TestReplayKafkaDeadLetter pins DESIGN.md §6 for Kafka: the record goes
// back to its original topic with its key, value and headers, without the
// __connect.errors.* headers, plus replayId; a dead letter whose origin is
// the DLQ topic itself is refused.
func TestReplayKafkaDeadLetter(t *testing.T) {
	t.Parallel()
	topic := testenv.UniqueName(t, "orders")
	brokers := testenv.Kafka(t, topic)
	e := newEnv(t, withKafka(t, brokers, "events"))
	id := uuid.New()
	headers := deadletter.EncodeKafkaHeaders([]deadletter.KafkaHeader{
		{Key: []byte(contracts.KafkaHeaderID), Value: []byte(id.String())},
		{Key: []byte(contracts.KafkaHeaderEventType), Value: []byte("sales.order.placed")},
		{Key: []byte("bin"), Value: []byte{0, 1, 2}},
		{Key: []byte(contracts.DLQHeaderTopic), Value: []byte(topic)},
		{Key: []byte(contracts.DLQHeaderStage), Value: []byte("VALIDATE")},
	})
	ids := e.record(t, deadletter.DeadLetter{
		EventID: id, Source: deadletter.SourceKafka, Origin: topic, Reason: "VALIDATE",
		OriginDetail: map[string]any{"dlq_topic": topic + ".dlq", "dlq_partition": 0, "dlq_offset": 7},
		Headers:      headers, Key: []byte("order-1"), Body: []byte(`{"not":"an envelope"}`),
	}, deadletter.DeadLetter{
		EventID: uuid.New(), Source: deadletter.SourceKafka, Origin: "x.dlq", Reason: "DECODE",
		OriginDetail: map[string]any{"dlq_topic": "x.dlq"}, Headers: deadletter.EncodeKafkaHeaders(nil), Body: []byte("x"),
	})

	r := e.post(t, fmt.Sprintf("/api/v1/dead-letters/%d/replay", ids[0]), "")
	if r.status != http.StatusOK {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	recs := consume(t, brokers, topic, 1)
	rec := recs[0]
	if string(rec.Key) != "order-1" || string(rec.Value) != `{"not":"an envelope"}` {
		t.Errorf("record key %q value %q", rec.Key, rec.Value)
	}
	if v, _ := header(rec, contracts.KafkaHeaderID); v != id.String() {
		t.Errorf("id header %q", v)
	}
	if v, _ := header(rec, "bin"); v != "\x00\x01\x02" {
		t.Errorf("bin header %q", v)
	}
	if v, ok := header(rec, contracts.KafkaHeaderReplayID); !ok || uuid.Validate(v) != nil {
		t.Errorf("replayId %q", v)
	}
	for _, h := range rec.Headers {
		if strings.HasPrefix(h.Key, "__connect.errors.") {
			t.Errorf("replayed record keeps %s", h.Key)
		}
	}
	it, err := e.store.Get(testCtx(t), ids[0])
	if err != nil || it.Status != deadletter.StatusReplayed || it.ReplayCount != 1 {
		t.Errorf("row after replay: %s %d %v", it.Status, it.ReplayCount, err)
	}

	r = e.post(t, fmt.Sprintf("/api/v1/dead-letters/%d/replay", ids[1]), "")
	if msg := r.errorMessage(t); r.status != http.StatusConflict || !strings.Contains(msg, "DLQ topic") {
		t.Errorf("origin = DLQ topic: %d %q", r.status, msg)
	}
}

// recordMany stores n RabbitMQ dead letters of queue in chunks.
func recordMany(t testing.TB, e *env, queue string, n int) {
	t.Helper()
	for start := 0; start < n; start += 1000 {
		dls := make([]deadletter.DeadLetter, 0, 1000)
		for range min(1000, n-start) {
			dls = append(dls, rabbitTo(queue))
		}
		if _, err := e.store.Record(testCtx(t), dls); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBulkReplay pins POST /dead-letters/replay: every matching pending row
// is replayed once under one replay id, paging through the store; rows
// whose queue is gone stay pending and are counted in failed_count; other
// queues' rows are not touched.
func TestBulkReplay(t *testing.T) {
	t.Parallel()
	b := testenv.RabbitMQ(t)
	e := newEnv(t, withQueues(t, b))
	ch := b.Channel(t)
	q := declareQueue(t, ch, b.Name("bulk"), nil)
	recordMany(t, e, q, 2000)
	gone := b.Name("gone")
	e.record(t, rabbitTo(gone), rabbitTo(gone), rabbitTo(gone))
	untouched := e.record(t, rabbitTo(b.Name("elsewhere")))[0]

	for _, queue := range []string{q, gone} {
		r := e.post(t, "/api/v1/dead-letters/replay", fmt.Sprintf(`{"queue":%q,"source":"rabbitmq","limit":10000}`, queue))
		if r.status != http.StatusOK {
			t.Fatalf("bulk replay: %d %s", r.status, r.body)
		}
		var res struct {
			ReplayedCount int     `json:"replayed_count"`
			ReplayID      string  `json:"replay_id"`
			FailedCount   int     `json:"failed_count"`
			FirstError    *string `json:"first_error"`
		}
		r.decode(t, &res)
		if uuid.Validate(res.ReplayID) != nil {
			t.Errorf("replay_id %q", res.ReplayID)
		}
		switch queue {
		case q:
			if res.ReplayedCount != 2000 || res.FailedCount != 0 {
				t.Errorf("replayed %d failed %d, want 2000, 0", res.ReplayedCount, res.FailedCount)
			}
		case gone:
			if res.ReplayedCount != 0 || res.FailedCount != 3 || res.FirstError == nil || !strings.Contains(*res.FirstError, "does not exist") {
				t.Errorf("queue gone: %s", r.body)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for queueDepth(t, ch, q) != 2000 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := queueDepth(t, ch, q); n != 2000 {
		t.Errorf("queue holds %d messages, want 2000", n)
	}
	// One replay id for the whole request.
	ids := map[string]bool{}
	for range 20 {
		d := getOne(t, ch, q)
		ids[fmt.Sprint(d.Headers[contracts.AMQPHeaderReplayID])] = true
	}
	if len(ids) != 1 {
		t.Errorf("replay ids %v, want one", ids)
	}
	var pending, replayed int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT count(*) FILTER (WHERE status = 'pending'),
		count(*) FILTER (WHERE status = 'replayed' AND replay_count = 1) FROM dead_letters`).Scan(&pending, &replayed); err != nil {
		t.Fatal(err)
	}
	if pending != 4 || replayed != 2000 {
		t.Errorf("pending %d replayed %d, want 4, 2000", pending, replayed)
	}
	if it, _ := e.store.Get(testCtx(t), untouched); it.Status != deadletter.StatusPending {
		t.Errorf("a row outside the filter is %s", it.Status)
	}
	if v := counter(t, e, "messagekit_admin_replays_total", "kind", "dead_letters"); v != 2 {
		t.Errorf("replays counter %v, want 2", v)
	}
}

// TestBulkReplayValidation pins the body rules of POST /dead-letters/replay.
func TestBulkReplayValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, body := range map[string]string{
		"no limit":       `{}`,
		"limit 0":        `{"limit":0}`,
		"limit too big":  `{"limit":10001}`,
		"not pending":    `{"limit":1,"status":"replayed"}`,
		"bad source":     `{"limit":1,"source":"sqs"}`,
		"bad since":      `{"limit":1,"since":"yesterday"}`,
		"until < since":  `{"limit":1,"since":"2026-01-02T00:00:00Z","until":"2026-01-01T00:00:00Z"}`,
		"unknown field":  `{"limit":1,"queues":"x"}`,
		"not an object":  `[1]`,
		"trailing data":  `{"limit":1} {}`,
		"limit a string": `{"limit":"5"}`,
	} {
		if r := e.post(t, "/api/v1/dead-letters/replay", body); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := do(t, e.api, http.MethodPost, "/api/v1/dead-letters/replay", "", strings.NewReader(`{"limit":1}`)); r.status != http.StatusUnauthorized {
		t.Errorf("no token: %d", r.status)
	}
	r := e.post(t, "/api/v1/dead-letters/replay", `{"limit":5,"status":"pending"}`)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"replayed_count":0`) {
		t.Errorf("nothing to replay: %d %s", r.status, r.body)
	}
}

// BenchmarkBulkReplay measures POST /dead-letters/replay of 10,000
// RabbitMQ dead letters to one queue (DESIGN goal: at least 2,000/s).
func BenchmarkBulkReplay(b *testing.B) {
	const n = 10000
	broker := testenv.RabbitMQ(b)
	for b.Loop() {
		b.StopTimer()
		e := newEnvB(b, withQueues(b, broker))
		ch := broker.Channel(b)
		q := declareQueue(b, ch, broker.Name("bench"), nil)
		recordMany(b, e, q, n)
		b.StartTimer()
		start := time.Now()
		r := do(b, e.api, http.MethodPost, "/api/v1/dead-letters/replay", "Bearer "+token,
			strings.NewReader(`{"limit":10000}`))
		elapsed := time.Since(start)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `"replayed_count":10000`) {
			b.Fatalf("%d %s", r.status, r.body)
		}
		b.ReportMetric(n/elapsed.Seconds(), "replays/s")
	}
}

// TestRetryFailed pins the seed's POST /dlq/{event_id}/retry: 400 for a
// malformed id or an event that is not failed, 404 for an unknown one; a
// failed event's pending dead letters are replayed to their queue and its
// outbox row is reset (failed false, failed_at and error_message NULL,
// attempt_count+1).
func TestRetryFailed(t *testing.T) {
	t.Parallel()
	b := testenv.RabbitMQ(t)
	e := newEnv(t, withQueues(t, b))
	ch := b.Channel(t)
	q := declareQueue(t, ch, b.Name("orders"), nil)
	ev := e.writeEvent(t, "sales.order.placed")
	ok := e.writeEvent(t, "sales.order.placed")
	e.record(t, rabbitFor(q, ev.EventID)) // flags the outbox row failed
	var attempts int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT attempt_count FROM outbox_events WHERE event_id = $1`, ev.EventID).Scan(&attempts); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		id   string
		want int
	}{
		{"not-a-uuid", http.StatusBadRequest},
		{uuid.NewString(), http.StatusNotFound},
		{ok.EventID.String(), http.StatusBadRequest},
	} {
		if r := e.post(t, "/api/v1/dlq/"+tc.id+"/retry", ""); r.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.id, r.status, r.body, tc.want)
		}
	}
	r := e.post(t, "/api/v1/dlq/"+ev.EventID.String()+"/retry", "")
	var said struct {
		Retried  bool    `json:"retried"`
		Replayed []int64 `json:"replayed_dead_letters"`
		Reset    bool    `json:"flags_reset"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	if r.decode(t, &said); !said.Retried || len(said.Replayed) != 1 || !said.Reset {
		t.Fatalf("retry said %s; want retried, one dead letter re-sent, flags reset", r.body)
	}
	d := getOne(t, ch, q)
	if d.MessageId != ev.EventID.String() || d.Headers[contracts.AMQPHeaderReplayCount] != int32(1) {
		t.Errorf("replayed message %s %v", d.MessageId, d.Headers)
	}
	var failed bool
	var failedAt *time.Time
	var msg *string
	var after int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT failed, failed_at, error_message, attempt_count FROM outbox_events WHERE event_id = $1`,
		ev.EventID).Scan(&failed, &failedAt, &msg, &after); err != nil {
		t.Fatal(err)
	}
	if failed || failedAt != nil || msg != nil || after != attempts+1 {
		t.Errorf("outbox row after retry: failed %v at %v msg %v attempts %d (was %d)", failed, failedAt, msg, after, attempts)
	}
	var status string
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT status FROM dead_letters WHERE event_id = $1`, ev.EventID).Scan(&status); err != nil || status != "replayed" {
		t.Errorf("dead letter %s %v", status, err)
	}
	if r := e.post(t, "/api/v1/dlq/"+ev.EventID.String()+"/retry", ""); r.status != http.StatusBadRequest {
		t.Errorf("retry again: %d, want 400 (no longer failed)", r.status)
	}
}

// TestOutboxReplay pins GET and POST /replay: from_ts and to_ts are
// required RFC 3339 bounds over created_at, inclusive, oldest first,
// event_type filters; POST writes the events to OUTBOX_TOPIC in the
// Relay's record format plus one replayId.
func TestOutboxReplay(t *testing.T) {
	t.Parallel()
	topic := testenv.UniqueName(t, "events")
	brokers := testenv.Kafka(t, topic)
	e := newEnv(t, withKafka(t, brokers, topic))
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	types := []string{"sales.order.placed", "sales.order.paid", "sales.order.placed", "sales.order.placed"}
	var events []contracts.Envelope
	for i, typ := range types {
		ev := e.writeEvent(t, typ)
		// Written out of order: the third is the oldest.
		at := base.Add(time.Duration([]int{1, 2, 0, 10}[i]) * time.Minute)
		e.exec(t, `UPDATE outbox_events SET created_at = $2, aggregate_type = 'order', traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' WHERE event_id = $1`, ev.EventID, at)
		events = append(events, ev)
	}
	rng := url.Values{"from_ts": {base.Format(time.RFC3339)}, "to_ts": {base.Add(2 * time.Minute).Format(time.RFC3339)}}

	type preview struct {
		Events []struct {
			EventID   uuid.UUID `json:"event_id"`
			EventType string    `json:"event_type"`
			CreatedAt time.Time `json:"created_at"`
		} `json:"events"`
	}
	var p preview
	r := e.get(t, "/api/v1/replay?"+rng.Encode())
	r.decode(t, &p)
	if r.status != http.StatusOK || len(p.Events) != 3 || p.Events[0].EventID != events[2].EventID ||
		p.Events[1].EventID != events[0].EventID || p.Events[2].EventID != events[1].EventID {
		t.Fatalf("preview %d %s", r.status, r.body)
	}
	filtered := url.Values{"from_ts": rng["from_ts"], "to_ts": rng["to_ts"], "event_type": {"sales.order.paid"}}
	p = preview{}
	e.get(t, "/api/v1/replay?"+filtered.Encode()).decode(t, &p)
	if len(p.Events) != 1 || p.Events[0].EventID != events[1].EventID {
		t.Errorf("filtered preview %+v", p)
	}
	for name, q := range map[string]string{
		"no from_ts":  "to_ts=2026-03-01T00:00:00Z",
		"no to_ts":    "from_ts=2026-03-01T00:00:00Z",
		"nothing":     "",
		"bad from_ts": "from_ts=yesterday&to_ts=2026-03-01T00:00:00Z",
		"to < from":   "from_ts=2026-03-02T00:00:00Z&to_ts=2026-03-01T00:00:00Z",
		"limit 0":     rng.Encode() + "&limit=0",
		"limit big":   rng.Encode() + "&limit=10001",
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			if r := do(t, e.api, method, "/api/v1/replay?"+q, "Bearer "+token, nil); r.status != http.StatusBadRequest {
				t.Errorf("%s %s: %d %s", method, name, r.status, r.body)
			}
		}
	}

	r = do(t, e.api, http.MethodPost, "/api/v1/replay?"+rng.Encode(), "Bearer "+token, nil)
	var res struct {
		ReplayedCount int    `json:"replayed_count"`
		ReplayID      string `json:"replay_id"`
	}
	r.decode(t, &res)
	if r.status != http.StatusOK || res.ReplayedCount != 3 {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	recs := consume(t, brokers, topic, 3)
	// One aggregate (order-1): one partition, in created_at order.
	for i, want := range []contracts.Envelope{events[2], events[0], events[1]} {
		rec := recs[i]
		if id, _ := header(rec, contracts.KafkaHeaderID); id != want.EventID.String() || string(rec.Key) != want.AggregateID {
			t.Errorf("record %d: id %s key %s, want %s", i, id, rec.Key, want.EventID)
		}
		for k, v := range map[string]string{
			contracts.KafkaHeaderEventType: want.EventType, contracts.KafkaHeaderAggregateType: "order",
			contracts.KafkaHeaderReplayID:    res.ReplayID,
			contracts.KafkaHeaderTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		} {
			if got, _ := header(rec, k); got != v {
				t.Errorf("record %d header %s = %q, want %q", i, k, got, v)
			}
		}
		if !strings.Contains(string(rec.Value), want.EventID.String()) {
			t.Errorf("record %d value %s", i, rec.Value)
		}
	}
}
