package kafkadlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/bookkeepertest"
	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/kafkadlq"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// rig is one test's Kafka, DLQ topic, group and database.
type rig struct {
	*bookkeepertest.Env
	brokers []string
	topic   string
	group   string
	client  *kgo.Client
}

func newRig(t *testing.T) *rig {
	t.Helper()
	topic := testenv.UniqueName(t, "events.dlq")
	k := testenv.KafkaWith(t, testenv.KafkaOptions{Topics: []string{topic}, Partitions: 2})
	client, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ProducerBatchMaxBytes(16<<20),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return &rig{Env: bookkeepertest.NewEnv(t), brokers: k.Brokers, topic: topic,
		group: testenv.UniqueName(t, "bookkeeper"), client: client}
}

func (r *rig) config(rec kafkadlq.Recorder) kafkadlq.Config {
	if rec == nil {
		rec = r.Recorder
	}
	return kafkadlq.Config{Brokers: r.brokers, GroupID: r.group, Topics: []string{r.topic}, Recorder: rec,
		Logger: r.Logs.Logger(), Metrics: r.Recorder.Metrics(), Version: sarama.V2_8_0_0,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}
}

func (r *rig) start(t *testing.T, cfg kafkadlq.Config) (*kafkadlq.Consumer, func()) {
	t.Helper()
	c, err := kafkadlq.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := bookkeepertest.Run(t, c)
	bookkeepertest.WaitFor(t, 20*time.Second, "group session", func() bool { return c.Check(context.Background()) == nil })
	return c, stop
}

// produce writes rs to partition 0 of the DLQ topic unless they name one.
func (r *rig) produce(t *testing.T, rs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, rec := range rs {
		rec.Topic = r.topic
	}
	if err := r.client.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func kgoHeaders(pairs []kv) []kgo.RecordHeader {
	hs := make([]kgo.RecordHeader, len(pairs))
	for i, p := range pairs {
		hs[i] = kgo.RecordHeader{Key: p[0], Value: []byte(p[1])}
	}
	return hs
}

// committed returns the group's committed offset of each partition (-1
// when none).
func (r *rig) committed(t *testing.T) [2]int64 {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin(r.brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	resp, err := admin.ListConsumerGroupOffsets(r.group, map[string][]int32{r.topic: {0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	var out [2]int64
	for p := range out {
		out[p] = -1
		if b := resp.GetBlock(r.topic, int32(p)); b != nil {
			out[p] = b.Offset
		}
	}
	return out
}

func addOutbox(t *testing.T, e *bookkeepertest.Env, id uuid.UUID) {
	t.Helper()
	if _, err := e.DB.Pool.Exec(context.Background(), `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at)
		VALUES ($1, 'orders.order.created', 'order-7', '{}', now())`, id); err != nil {
		t.Fatal(err)
	}
}

type row struct {
	Origin, Reason, ErrorMessage string
	EventID                      *uuid.UUID
	DeathCount                   int
	OutboxFound                  bool
	Detail                       map[string]any
	Key                          []byte
	BodyLen                      int
}

func rowOf(t *testing.T, e *bookkeepertest.Env, where string, args ...any) row {
	t.Helper()
	var r row
	var detail []byte
	err := e.DB.Pool.QueryRow(context.Background(), `SELECT origin, reason, coalesce(error_message, ''), event_id,
		death_count, outbox_found, origin_detail, message_key, length(body) FROM dead_letters WHERE `+where, args...).
		Scan(&r.Origin, &r.Reason, &r.ErrorMessage, &r.EventID, &r.DeathCount, &r.OutboxFound, &detail, &r.Key, &r.BodyLen)
	if err != nil {
		t.Fatalf("dead letter where %s %v: %v", where, args, err)
	}
	if err := json.Unmarshal(detail, &r.Detail); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestKafkaDLQ pins the Kafka side end to end: bridge DLQ records and
// Kafka Connect sink DLQ records are stored with their original topic,
// partition and offset, stage, exception class and message, and the DLQ
// record's place; the bridge record's outbox row is flagged; malformed
// records (no headers, binary value, tombstone, 10 MB value) are stored
// raw; and every offset is committed once the rows are.
func TestKafkaDLQ(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	bridgeID, bodyID := uuid.New(), uuid.New()
	addOutbox(t, r.Env, bridgeID)
	huge := make([]byte, 10<<20)
	for i := range huge {
		huge[i] = byte(i % 251)
	}
	r.produce(t,
		&kgo.Record{Partition: 0, Key: []byte("order-7"), Value: envelope(bridgeID, "Orders"),
			Headers: kgoHeaders(bridgeHeaders(bridgeID, "VALIDATE", validateMessage))},
		&kgo.Record{Partition: 0, Value: []byte{0, 0, 0, 1, 0xff}, Headers: kgoHeaders(connectHeaders())},
		&kgo.Record{Partition: 1, Value: envelope(bodyID, "orders.order.created")},
		&kgo.Record{Partition: 1, Value: []byte{0xff, 0xfe, 0}},
		&kgo.Record{Partition: 1, Key: []byte("gone"), Headers: kgoHeaders(connectHeaders())},
		&kgo.Record{Partition: 1, Value: huge, Headers: kgoHeaders(bridgeHeaders(uuid.New(), "RECORD_TOO_LARGE", "record of 10485760 bytes is over the limit"))},
	)
	r.start(t, r.config(nil))
	r.WaitRows(t, 6, 30*time.Second)

	b := rowOf(t, r.Env, "event_id = $1", bridgeID)
	if b.Origin != "events" || b.Reason != "VALIDATE" || b.ErrorMessage != validateMessage || !b.OutboxFound ||
		string(b.Key) != "order-7" || b.Detail["partition"] != 2.0 || b.Detail["offset"] != 1234.0 ||
		b.Detail["exception_class"] != "*github.com/firstunicorn/messagekit-go/pkg/contracts.ValidationError" ||
		b.Detail["dlq_topic"] != r.topic || b.Detail["dlq_partition"] != 0.0 || b.Detail["dlq_offset"] != 0.0 {
		t.Errorf("bridge record: %+v", b)
	}
	var failed bool
	var message string
	if err := r.DB.Pool.QueryRow(context.Background(), `SELECT failed, error_message FROM outbox_events WHERE event_id = $1`,
		bridgeID).Scan(&failed, &message); err != nil || !failed || message != validateMessage {
		t.Errorf("outbox row: failed %v, message %q (%v)", failed, message, err)
	}
	c := rowOf(t, r.Env, "reason = 'VALUE_CONVERTER' AND body_sha256 = sha256('\\x00000001ff'::bytea)")
	if c.Origin != "orders" || c.Detail["connector"] != "jdbc-sink" || c.Detail["offset"] != 42.0 || c.EventID != nil ||
		c.Detail["exception_class"] != "org.apache.kafka.connect.errors.DataException" ||
		!strings.HasPrefix(c.ErrorMessage, "Converting byte[] to Kafka Connect data failed") {
		t.Errorf("connect record: %+v", c)
	}
	if got := rowOf(t, r.Env, "event_id = $1", bodyID); got.Reason != "unparseable" || got.Origin != r.topic || got.OutboxFound {
		t.Errorf("record without headers: %+v", got)
	}
	if got := rowOf(t, r.Env, "message_key = 'gone'"); got.BodyLen != 0 || got.Detail["value_null"] != true {
		t.Errorf("tombstone: %+v", got)
	}
	if got := rowOf(t, r.Env, "reason = 'RECORD_TOO_LARGE'"); got.BodyLen != len(huge) {
		t.Errorf("10 MB record stored with %d bytes", got.BodyLen)
	}
	bookkeepertest.WaitFor(t, 10*time.Second, "committed offsets", func() bool { return r.committed(t) == [2]int64{2, 4} })
}

// TestKafkaPostgresDown pins that no offset is committed for records that
// are not stored: while PostgreSQL is down the partition stops, and once
// it is back the records are stored and their offsets committed.
func TestKafkaPostgresDown(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.start(t, r.config(nil))
	r.Proxy.SetDown(true)
	r.produce(t, &kgo.Record{Partition: 0, Value: []byte("a"), Headers: kgoHeaders(connectHeaders())},
		&kgo.Record{Partition: 0, Value: []byte("b"), Headers: kgoHeaders(connectHeaders())})
	bookkeepertest.WaitFor(t, 20*time.Second, "open breaker", func() bool {
		return r.Recorder.Check(context.Background()) != nil
	})
	time.Sleep(1500 * time.Millisecond) // longer than the auto-commit interval: nothing to poll for
	if got := r.committed(t); got[0] != -1 {
		t.Fatalf("offset %d committed while the database was down", got[0])
	}
	if n := r.Count(t); n != 0 {
		t.Fatalf("%d rows while the database was down", n)
	}
	r.Proxy.SetDown(false)
	r.WaitRows(t, 2, 20*time.Second)
	bookkeepertest.WaitFor(t, 10*time.Second, "committed offset", func() bool { return r.committed(t)[0] == 2 })
}

// hookRecorder runs hooks before and after the real Recorder; after may
// replace its result with an error.
type hookRecorder struct {
	inner  kafkadlq.Recorder
	before func(ctx context.Context) error
	after  func(ctx context.Context) error
}

func (h *hookRecorder) Record(ctx context.Context, s deadletter.Source, ls []bookkeeper.Letter) ([]deadletter.Recorded, error) {
	if h.before != nil {
		if err := h.before(ctx); err != nil {
			return nil, err
		}
	}
	res, err := h.inner.Record(ctx, s, ls)
	if err == nil && h.after != nil {
		if err := h.after(ctx); err != nil {
			return nil, err
		}
	}
	return res, err
}

// TestKafkaCrash pins the crash cases: a consumer that dies between
// receipt and commit marks nothing, so the next member of the group reads
// the record again and stores it once; one that dies after the commit but
// before the offset is marked has its record read again and recognised
// (same DLQ topic, partition and offset), so it is not counted twice.
func TestKafkaCrash(t *testing.T) {
	t.Parallel()
	for _, afterCommit := range []bool{false, true} {
		name := "before commit"
		if afterCommit {
			name = "after commit"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			var stopFirst func()
			var once sync.Once
			crashed := make(chan struct{})
			crash := func(ctx context.Context) error {
				once.Do(func() { go func() { stopFirst(); close(crashed) }() })
				<-ctx.Done() // the process is going down: nothing more happens
				return errors.New("crashed")
			}
			hook := &hookRecorder{inner: r.Recorder}
			if afterCommit {
				hook.after = crash
			} else {
				hook.before = crash
			}
			_, stopFirst = r.start(t, r.config(hook))
			id := uuid.New()
			addOutbox(t, r.Env, id)
			r.produce(t, &kgo.Record{Partition: 0, Value: envelope(id, "orders.order.created"),
				Headers: kgoHeaders(bridgeHeaders(id, "DECODE", "boom"))})
			select {
			case <-crashed:
			case <-time.After(30 * time.Second):
				t.Fatal("the first consumer never got the record")
			}
			if n, want := r.Count(t), map[bool]int{false: 0, true: 1}[afterCommit]; n != want {
				t.Fatalf("%d rows after the crash, want %d", n, want)
			}
			if got := r.committed(t); got[0] != -1 {
				t.Fatalf("offset %d committed by the crashed consumer", got[0])
			}
			r.start(t, r.config(nil))
			if afterCommit {
				bookkeepertest.WaitFor(t, 20*time.Second, "redelivery recognised", func() bool {
					return r.Metric(t, "messagekit_bookkeeper_duplicate_deliveries_total", map[string]string{"source": "kafka"}) == 1
				})
			} else {
				r.WaitRows(t, 1, 20*time.Second)
			}
			bookkeepertest.WaitFor(t, 10*time.Second, "committed offset", func() bool { return r.committed(t)[0] == 1 })
			if got := rowOf(t, r.Env, "event_id = $1", id); got.DeathCount != 1 {
				t.Fatalf("death_count = %d, want 1", got.DeathCount)
			}
			var attempts int
			if err := r.DB.Pool.QueryRow(context.Background(), `SELECT attempt_count FROM outbox_events WHERE event_id = $1`, id).
				Scan(&attempts); err != nil || attempts != 1 {
				t.Fatalf("outbox attempt_count = %d (%v), want 1", attempts, err)
			}
			if n := r.Count(t); n != 1 {
				t.Fatalf("%d rows, want 1", n)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	rec := &hookRecorder{}
	for _, cfg := range []kafkadlq.Config{
		{Recorder: rec},
		{Brokers: []string{"x:1"}},
		{Brokers: []string{"x:1"}, Recorder: rec, Topics: []string{""}},
	} {
		if _, err := kafkadlq.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	c, err := kafkadlq.New(kafkadlq.Config{Brokers: []string{"x:1"}, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("Check before Run = %v, want not connected", err)
	}
}
