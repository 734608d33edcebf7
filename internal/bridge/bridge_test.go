package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/bridge"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

const typeCreated = "test.order.created"

// seqOf reads data.seq of a delivered envelope.
func seqOf(t *testing.T, d amqp.Delivery) int {
	t.Helper()
	var v struct {
		Data struct{ Seq int } `json:"data"`
	}
	must(t, json.Unmarshal(d.Body, &v))
	return v.Data.Seq
}

// Pins DESIGN §2–3: every event arrives exactly once, per-aggregate order is
// Kafka order, and the AMQP message carries the specified properties and
// headers with their integer types.
func TestBridgeDeliversEveryEventOnceInOrder(t *testing.T) {
	t.Parallel()
	const n, aggregates, partitions = 10000, 500, 8
	r := newRig(t, partitions, "#")
	evs := make([]event, n)
	for i := range evs {
		a := i % aggregates
		evs[i] = newEvent(t, typeCreated, fmt.Sprintf("order-%d", a), i, int32(a%partitions))
		if i%3 == 0 {
			evs[i].headers[contracts.KafkaHeaderTraceparent] = fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)
			evs[i].headers[contracts.KafkaHeaderTracestate] = "vendor=x"
		}
	}
	recs := r.produce(evs...)
	reg := prometheus.NewRegistry()
	cfg := r.config(reg)
	store := &sharingStore{PostgresStore: bridge.NewPostgresStore(r.db.Pool)}
	cfg.Store = store
	r.start(cfg)
	got := r.waitFor(60*time.Second, "10k deliveries", func(d []amqp.Delivery) bool { return len(d) >= n })
	// With records waiting, a batch's keys are recorded in the round trip
	// that looks up the next batch's.
	if store.shared.Load() == 0 {
		t.Error("no batch's keys were recorded with the next batch's look-up")
	}

	byID := make(map[string]int, n)
	for i, ev := range evs {
		byID[ev.env.EventID.String()] = i
	}
	seen := make(map[string]bool, n)
	lastSeq := make(map[string]int, aggregates)
	for _, d := range got {
		i, ok := byID[d.MessageId]
		if !ok || seen[d.MessageId] {
			t.Fatalf("delivery %q: unknown or duplicate", d.MessageId)
		}
		seen[d.MessageId] = true
		ev, rec := evs[i], recs[i]
		agg := ev.env.AggregateID
		if prev, ok := lastSeq[agg]; ok && seqOf(t, d) <= prev {
			t.Fatalf("aggregate %s: seq %d after %d", agg, seqOf(t, d), prev)
		}
		lastSeq[agg] = seqOf(t, d)
		if d.RoutingKey != typeCreated || d.Type != typeCreated || d.ContentType != contracts.ContentTypeJSON ||
			d.DeliveryMode != amqp.Persistent || d.AppId != "test-service" ||
			d.CorrelationId != ev.env.CorrelationID || !d.Timestamp.Equal(ev.env.OccurredAt.Truncate(time.Second)) ||
			!bytes.Equal(d.Body, rec.Value) {
			t.Fatalf("delivery %s: properties or body differ: %+v", d.MessageId, d)
		}
		h := d.Headers
		if h[contracts.AMQPHeaderAggregateID] != agg || h[contracts.AMQPHeaderKafkaTopic] != r.topic ||
			h[contracts.AMQPHeaderKafkaPartition] != rec.Partition || h[contracts.AMQPHeaderKafkaOffset] != rec.Offset {
			t.Fatalf("delivery %s: headers %v, want partition int32(%d) offset int64(%d)", d.MessageId, h, rec.Partition, rec.Offset)
		}
		if tp, ok := ev.headers[contracts.KafkaHeaderTraceparent]; ok != (h[contracts.AMQPHeaderTraceparent] != nil) ||
			(ok && (h[contracts.AMQPHeaderTraceparent] != tp || h[contracts.AMQPHeaderTracestate] != "vendor=x")) {
			t.Fatalf("delivery %s: trace headers %v, want %q", d.MessageId, h, tp)
		}
		if _, ok := h[contracts.AMQPHeaderReplayID]; ok {
			t.Fatalf("delivery %s: x-replay-id on a first delivery", d.MessageId)
		}
	}
	if c := metric(t, reg, "messagekit_bridge_published_total"); c != n {
		t.Errorf("published_total = %v, want %d", c, n)
	}
	if c := metric(t, reg, "messagekit_bridge_records_consumed_total", "topic", r.topic); c != n {
		t.Errorf("records_consumed_total = %v, want %d", c, n)
	}
}

// Pins DESIGN §6: a re-sent event id is delivered once; a replay (header
// replayId) of a bridged event passes once more, with x-replay-id, and only
// once per replay id.
func TestBridgeDedupsResendsAndPassesReplaysOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, "#")
	reg := prometheus.NewRegistry()
	r.start(r.config(reg))
	e1, e2 := newEvent(t, typeCreated, "order-1", 1, 0), newEvent(t, typeCreated, "order-2", 2, 0)
	r.produce(e1, e2, e1) // Debezium re-sends e1
	r.waitFor(20*time.Second, "e1 and e2", hasIDs(e1.env.EventID, e2.env.EventID))

	replay := e1
	replay.headers = map[string]string{contracts.KafkaHeaderID: e1.env.EventID.String(), contracts.KafkaHeaderReplayID: "replay-7"}
	sentinel := newEvent(t, typeCreated, "order-3", 3, 0)
	r.produce(replay, replay, e1, sentinel) // the same partition: the sentinel comes last
	got := r.waitFor(20*time.Second, "the sentinel", hasIDs(sentinel.env.EventID))

	var ids, replayIDs []string
	for _, d := range got {
		ids = append(ids, d.MessageId)
		rid, _ := d.Headers[contracts.AMQPHeaderReplayID].(string)
		replayIDs = append(replayIDs, rid)
	}
	wantIDs := []string{e1.env.EventID.String(), e2.env.EventID.String(), e1.env.EventID.String(), sentinel.env.EventID.String()}
	if strings.Join(ids, ",") != strings.Join(wantIDs, ",") || strings.Join(replayIDs, ",") != ",,replay-7," {
		t.Fatalf("deliveries %v with replay ids %q, want %v with only the third replayed", ids, replayIDs, wantIDs)
	}
	if c := metric(t, reg, "messagekit_bridge_duplicates_skipped_total"); c != 3 {
		t.Errorf("duplicates_skipped_total = %v, want 3 (e1 twice, the second replay)", c)
	}
}

// Pins DESIGN §3: poison records go to the DLQ topic with the Kafka Connect
// headers and their original key, value, headers and timestamp, and the good
// records around them are delivered in order.
func TestBridgeDeadLettersPoisonRecords(t *testing.T) {
	t.Parallel()
	r := newRig(t, 2, "#")
	reg := prometheus.NewRegistry()
	cfg := r.config(reg)
	cfg.MaxRecordBytes = 2048
	r.start(cfg)

	good := make([]event, 7)
	for i := range good {
		good[i] = newEvent(t, typeCreated, "order-1", i, 1)
	}
	noID := newEvent(t, typeCreated, "order-1", 100, 1)
	noIDJSON, _ := json.Marshal(noID.env)
	var m map[string]any
	must(t, json.Unmarshal(noIDJSON, &m))
	delete(m, "eventId")
	noIDJSON, _ = json.Marshal(m)
	m["eventId"], m["occurredAt"] = uuid.NewString(), 42
	wrongTypes, _ := json.Marshal(m)
	big := newEvent(t, typeCreated, "order-1", 101, 1)
	big.env.Data = json.RawMessage(`{"pad":"` + strings.Repeat("x", 4096) + `"}`)
	badHeader := newEvent(t, typeCreated, "order-1", 102, 1)
	badHeader.headers[contracts.KafkaHeaderID] = "not-a-uuid"
	// Not UTF-8 inside a string: forwarded raw before, with U+FFFD in
	// x-aggregate-id; now DECODE, like any text that is not JSON.
	badUTF8 := newEvent(t, typeCreated, "order-1", 103, 1)
	badUTF8JSON, err := badUTF8.env.MarshalJSON()
	must(t, err)
	badUTF8.value = bytes.Replace(badUTF8JSON, []byte(`"order-1"`), []byte("\"order-\xff\""), 1)

	poison := []struct {
		ev    event
		stage contracts.Stage
	}{
		{event{partition: 1, key: "k-garbage", value: []byte("\x00\xffnot json"), headers: map[string]string{"h": "garbage"}}, contracts.StageDecode},
		{event{partition: 1, key: "k-noid", value: noIDJSON, headers: map[string]string{"h": "noid"}}, contracts.StageValidate},
		{event{partition: 1, key: "k-types", value: wrongTypes, headers: map[string]string{"h": "types"}}, contracts.StageValidate},
		{big, contracts.StageRecordTooLarge},
		{badHeader, contracts.StageValidate},
		{badUTF8, contracts.StageDecode},
	}
	var evs []event
	for i, p := range poison {
		evs = append(evs, good[i], p.ev)
	}
	evs = append(evs, good[len(poison)])
	recs := r.produce(evs...)

	var wantIDs []uuid.UUID
	for _, g := range good {
		wantIDs = append(wantIDs, g.env.EventID)
	}
	got := r.waitFor(20*time.Second, "the good records", hasIDs(wantIDs...))
	if len(got) != len(good) {
		t.Fatalf("%d deliveries, want %d", len(got), len(good))
	}
	for i, d := range got {
		if d.MessageId != good[i].env.EventID.String() {
			t.Fatalf("delivery %d is %s, want %s (Kafka order)", i, d.MessageId, good[i].env.EventID)
		}
	}

	dlq := r.readDLQ(r.topic+contracts.DLQTopicSuffix, len(poison), 20*time.Second)
	for i, p := range poison {
		src, dl := recs[2*i+1], dlq[i]
		if !bytes.Equal(dl.Key, src.Key) || !bytes.Equal(dl.Value, src.Value) || !dl.Timestamp.Equal(src.Timestamp) {
			t.Errorf("dead letter %d: key/value/timestamp differ from the original", i)
		}
		h := map[string]string{}
		for _, kv := range dl.Headers {
			h[kv.Key] = string(kv.Value)
		}
		for _, kv := range src.Headers {
			if h[kv.Key] != string(kv.Value) {
				t.Errorf("dead letter %d: original header %s = %q, want %q", i, kv.Key, h[kv.Key], kv.Value)
			}
		}
		want := map[string]string{
			contracts.DLQHeaderTopic: r.topic, contracts.DLQHeaderPartition: "1",
			contracts.DLQHeaderOffset: strconv.FormatInt(src.Offset, 10), contracts.DLQHeaderConnectorName: contracts.DLQConnectorName,
			contracts.DLQHeaderTaskID: "0", contracts.DLQHeaderStage: string(p.stage),
			contracts.DLQHeaderClassName: "github.com/firstunicorn/messagekit-go/internal/bridge.Bridge",
		}
		for k, v := range want {
			if h[k] != v {
				t.Errorf("dead letter %d: %s = %q, want %q", i, k, h[k], v)
			}
		}
		if h[contracts.DLQHeaderExceptionClassName] == "" || h[contracts.DLQHeaderExceptionMessage] == "" {
			t.Errorf("dead letter %d: no exception class or message: %v", i, h)
		}
	}
	if c := metric(t, reg, "messagekit_bridge_dead_lettered_total", "stage", "VALIDATE"); c != 3 {
		t.Errorf("dead_lettered_total{VALIDATE} = %v, want 3", c)
	}
}

// Pins DESIGN §2: a bridge stopped mid-stream and restarted in the same
// group loses nothing, and what the first one bridged is not published
// again (its in-flight batches were recorded and marked on the way out).
func TestBridgeRestartMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	const n, partitions = 4000, 4
	r := newRig(t, partitions, "#")
	var evs []event
	for i := range n {
		evs = append(evs, newEvent(t, typeCreated, fmt.Sprintf("order-%d", i%40), i, int32(i%partitions)))
	}
	r.produce(evs...)
	cfg := r.config(nil)
	cfg.BatchSize = 20
	stop := r.start(cfg)
	r.waitFor(30*time.Second, "a first part", func(d []amqp.Delivery) bool { return len(d) >= n/4 })
	must(t, stop())
	first := len(r.got())

	reg := prometheus.NewRegistry()
	r.start(r.config(reg))
	var sentinels []event
	var ids []uuid.UUID
	for p := range int32(partitions) {
		s := newEvent(t, typeCreated, fmt.Sprintf("sentinel-%d", p), n+int(p), p)
		sentinels, ids = append(sentinels, s), append(ids, s.env.EventID)
	}
	r.produce(sentinels...)
	got := r.waitFor(30*time.Second, "the sentinels", hasIDs(ids...))
	count := map[string]int{}
	for _, d := range got {
		count[d.MessageId]++
	}
	for _, ev := range append(evs, sentinels...) {
		if c := count[ev.env.EventID.String()]; c != 1 {
			t.Errorf("event %s delivered %d times, want 1", ev.env.EventID, c)
		}
	}
	t.Logf("first bridge delivered %d before the stop; the second skipped %v duplicates", first,
		metric(t, reg, "messagekit_bridge_duplicates_skipped_total"))
}

// Pins DESIGN §3: an unroutable (returned) message is dropped and counted, or
// dead-lettered with stage AMQP_UNROUTABLE, per BRIDGE_UNROUTABLE; the
// partition moves on either way.
func TestBridgeUnroutable(t *testing.T) {
	t.Parallel()
	for _, policy := range []bridge.UnroutablePolicy{bridge.UnroutableDrop, bridge.UnroutableDLQ} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, 1, typeCreated) // only created events have a queue
			reg := prometheus.NewRegistry()
			cfg := r.config(reg)
			cfg.Unroutable = policy
			r.start(cfg)
			a, lost, b := newEvent(t, typeCreated, "o", 1, 0), newEvent(t, "test.order.lost", "o", 2, 0), newEvent(t, typeCreated, "o", 3, 0)
			recs := r.produce(a, lost, b)
			got := r.waitFor(20*time.Second, "the routable events", hasIDs(a.env.EventID, b.env.EventID))
			if len(got) != 2 {
				t.Fatalf("%d deliveries, want 2", len(got))
			}
			switch policy {
			case bridge.UnroutableDrop:
				deadline := time.Now().Add(10 * time.Second)
				for metric(t, reg, "messagekit_bridge_unroutable_total", "routing_key", "test.order.lost") != 1 {
					if time.Now().After(deadline) {
						t.Fatal("unroutable_total{routing_key=test.order.lost} never reached 1")
					}
					time.Sleep(10 * time.Millisecond)
				}
			case bridge.UnroutableDLQ:
				dl := r.readDLQ(r.topic+contracts.DLQTopicSuffix, 1, 20*time.Second)[0]
				h := map[string]string{}
				for _, kv := range dl.Headers {
					h[kv.Key] = string(kv.Value)
				}
				if h[contracts.DLQHeaderStage] != string(contracts.StageAMQPUnroutable) || !bytes.Equal(dl.Value, recs[1].Value) ||
					h[contracts.DLQHeaderOffset] != strconv.FormatInt(recs[1].Offset, 10) ||
					!strings.HasSuffix(h[contracts.DLQHeaderExceptionClassName], "bridge.UnroutableError") {
					t.Fatalf("dead letter headers %v", h)
				}
			}
		})
	}
}

// sharingStore counts the round trips that record a batch's keys and look
// up the next batch's.
type sharingStore struct {
	*bridge.PostgresStore
	shared atomic.Int64
}

func (s *sharingStore) RecordAndProcessed(ctx context.Context, consumer string, done, keys []uuid.UUID) ([]bool, error) {
	if len(done) > 0 && len(keys) > 0 {
		s.shared.Add(1)
	}
	return s.PostgresStore.RecordAndProcessed(ctx, consumer, done, keys)
}

// crashingStore records keys, then, once armed, reports a failure after
// each real write: the process "dies" between recording a batch and marking
// its offsets.
type crashingStore struct {
	bridge.Store
	after   atomic.Int64 // Record calls left before the crash
	crashed atomic.Bool
}

func (s *crashingStore) Record(ctx context.Context, consumer string, keys []uuid.UUID) error {
	if err := s.Store.Record(ctx, consumer, keys); err != nil {
		return err
	}
	if s.after.Add(-1) < 0 {
		s.crashed.Store(true)
		return errors.New("simulated crash after recording")
	}
	return nil
}

// Pins DESIGN §2 after a crash: records recorded as processed but whose
// offsets were never marked are consumed again by the next bridge and
// dropped by dedup; nothing is missing and nothing is delivered twice.
func TestBridgeCrashBeforeMarkDedupsRedelivery(t *testing.T) {
	t.Parallel()
	const n, partitions = 2000, 2
	r := newRig(t, partitions, "#")
	var evs []event
	for i := range n {
		evs = append(evs, newEvent(t, typeCreated, fmt.Sprintf("order-%d", i%20), i, int32(i%partitions)))
	}
	r.produce(evs...)
	store := &crashingStore{Store: bridge.NewPostgresStore(r.db.Pool)}
	store.after.Store(10)
	cfg := r.config(nil)
	cfg.Store, cfg.BatchSize = store, 25
	stop := r.start(cfg)
	deadline := time.Now().Add(30 * time.Second)
	for !store.crashed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the store never crashed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	must(t, stop())

	reg := prometheus.NewRegistry()
	r.start(r.config(reg))
	var ids []uuid.UUID
	for _, ev := range evs {
		ids = append(ids, ev.env.EventID)
	}
	got := r.waitFor(30*time.Second, "every event", hasIDs(ids...))
	count := map[string]int{}
	for _, d := range got {
		count[d.MessageId]++
	}
	for id, c := range count {
		if c != 1 {
			t.Errorf("event %s delivered %d times, want 1", id, c)
		}
	}
	if dups := metric(t, reg, "messagekit_bridge_duplicates_skipped_total"); dups == 0 || dups > partitions*25 {
		t.Errorf("the second bridge skipped %v duplicates, want 1 to %d (the unmarked batches)", dups, partitions*25)
	}
}
