package bridge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// memStore is an in-memory Store.
type memStore struct {
	mu   sync.Mutex
	keys map[uuid.UUID]bool
	fail int // Record calls left to fail
}

func (s *memStore) Processed(_ context.Context, _ string, keys []uuid.UUID) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]bool, len(keys))
	for i, k := range keys {
		out[i] = s.keys[k]
	}
	return out, nil
}

func (s *memStore) Record(_ context.Context, _ string, keys []uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("database down")
	}
	for _, k := range keys {
		s.keys[k] = true
	}
	return nil
}

// fakePublisher acks or nacks each publish as ack says and records the
// offsets it published, in order.
type fakePublisher struct {
	ack       func(offset int64, attempt int) bool
	attempts  map[int64]int
	published []int64
}

func (f *fakePublisher) Publish(_ context.Context, _, _ string, msg amqp.Publishing) (confirmation, error) {
	off := msg.Headers[contracts.AMQPHeaderKafkaOffset].(int64)
	f.attempts[off]++
	f.published = append(f.published, off)
	ack := f.ack(off, f.attempts[off])
	return func(context.Context) (bool, error) { return ack, nil }, nil
}

func (f *fakePublisher) Returned() []amqp.Return { return nil }

// fakeDLQ fails its first fail sends.
type fakeDLQ struct {
	fail int
	sent []*sarama.ProducerMessage
}

func (f *fakeDLQ) SendMessage(m *sarama.ProducerMessage) (int32, int64, error) {
	if f.fail > 0 {
		f.fail--
		return 0, 0, errors.New("broker unavailable")
	}
	f.sent = append(f.sent, m)
	return 0, int64(len(f.sent) - 1), nil
}

func testPartition(t *testing.T, store *memStore, pub *fakePublisher, dlq *fakeDLQ) *partition {
	t.Helper()
	b, err := New(Config{
		Brokers: []string{"127.0.0.1:1"}, Topics: []string{"events"}, Group: "g",
		AMQPURL: "amqp://127.0.0.1:1/", Store: store, Backoff: time.Millisecond, NackAttempts: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &partition{b: b, pub: pub, dlq: dlq, log: b.log}
}

func messages(t *testing.T, n int) []*sarama.ConsumerMessage {
	t.Helper()
	out := make([]*sarama.ConsumerMessage, n)
	for i := range out {
		env, err := contracts.New("test.order.created", "o", "test-service", map[string]int{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := env.MarshalJSON()
		out[i] = &sarama.ConsumerMessage{Topic: "events", Partition: 0, Offset: int64(10 + i), Key: []byte("o"), Value: body}
	}
	return out
}

// Pins the nack policy (DESIGN §3): a nacked record is retried with
// backoff, then dead-lettered with stage AMQP_NACK; the batch resolves only
// once it is, and the records confirmed meanwhile are recorded.
func TestProcessNackPolicy(t *testing.T) {
	tests := []struct {
		name          string
		ack           func(off int64, attempt int) bool
		wantDLQ       []int64 // offsets dead-lettered
		wantRecorded  int
		wantPublishes int
	}{
		{"all acked", func(int64, int) bool { return true }, nil, 4, 4},
		{"nacked once then acked", func(off int64, a int) bool { return off != 11 || a > 1 }, nil, 4, 5},
		{"always nacked", func(off int64, _ int) bool { return off != 12 }, []int64{12}, 3, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{keys: map[uuid.UUID]bool{}}
			pub := &fakePublisher{ack: tt.ack, attempts: map[int64]int{}}
			dlq := &fakeDLQ{}
			p := testPartition(t, store, pub, dlq)
			batch := messages(t, 4)
			n, err := p.process(context.Background(), batch)
			if err != nil || n != len(batch) {
				t.Fatalf("process = %d, %v; want %d, nil", n, err, len(batch))
			}
			if len(pub.published) != tt.wantPublishes {
				t.Errorf("%d publishes %v, want %d", len(pub.published), pub.published, tt.wantPublishes)
			}
			if len(store.keys) != tt.wantRecorded {
				t.Errorf("%d keys recorded, want %d", len(store.keys), tt.wantRecorded)
			}
			var got []int64
			for _, m := range dlq.sent {
				for _, h := range m.Headers {
					if string(h.Key) == contracts.DLQHeaderStage && string(h.Value) != string(contracts.StageAMQPNack) {
						t.Errorf("stage %s, want AMQP_NACK", h.Value)
					}
					if string(h.Key) == contracts.DLQHeaderOffset {
						var off int64
						for _, c := range h.Value {
							off = off*10 + int64(c-'0')
						}
						got = append(got, off)
					}
				}
			}
			if len(got) != len(tt.wantDLQ) || (len(got) > 0 && got[0] != tt.wantDLQ[0]) {
				t.Errorf("dead-lettered offsets %v, want %v", got, tt.wantDLQ)
			}
		})
	}
}

// Pins "a DLQ produce failure blocks the partition": the dead letter is
// retried until Kafka takes it; a stop while it is failing leaves it and
// everything after it unmarked.
func TestProcessDeadLetterBlocks(t *testing.T) {
	batch := messages(t, 3)
	batch[1].Value = []byte("garbage")

	store := &memStore{keys: map[uuid.UUID]bool{}}
	dlq := &fakeDLQ{fail: 3}
	p := testPartition(t, store, &fakePublisher{ack: func(int64, int) bool { return true }, attempts: map[int64]int{}}, dlq)
	if n, err := p.process(context.Background(), batch); err != nil || n != 3 || len(dlq.sent) != 1 {
		t.Fatalf("process = %d, %v with %d dead letters; want 3, nil, 1", n, err, len(dlq.sent))
	}

	stop, cancel := context.WithCancel(context.Background())
	dlq = &fakeDLQ{fail: 1 << 30}
	store = &memStore{keys: map[uuid.UUID]bool{}}
	p = testPartition(t, store, &fakePublisher{ack: func(int64, int) bool { return true }, attempts: map[int64]int{}}, dlq)
	time.AfterFunc(50*time.Millisecond, cancel)
	n, err := p.process(stop, batch)
	if err != nil || n != 1 {
		t.Fatalf("process = %d, %v; want 1 (only the record before the dead letter), nil", n, err)
	}
	if len(store.keys) != 1 {
		t.Errorf("%d keys recorded, want 1: only the marked prefix", len(store.keys))
	}
}

// Pins that the dedup keys are recorded before any offset is marked: when
// recording fails until the stop, nothing of the batch may be marked.
func TestProcessRecordFailureMarksNothing(t *testing.T) {
	store := &memStore{keys: map[uuid.UUID]bool{}, fail: 1 << 30}
	p := testPartition(t, store, &fakePublisher{ack: func(int64, int) bool { return true }, attempts: map[int64]int{}}, &fakeDLQ{})
	stop, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	if n, err := p.process(stop, messages(t, 3)); n != 0 || err != nil {
		t.Fatalf("process = %d, %v; want 0, nil", n, err)
	}
}

func TestParseRoutingKey(t *testing.T) {
	tests := []struct {
		tmpl, want string
		wantErr    bool
	}{
		{"{eventType}", "identity.user.created", false},
		{"{source}.{eventType}", "identity-service.identity.user.created", false},
		{"agg.{aggregateType}.x", "agg.user.x", false},
		{"fixed", "fixed", false},
		{"{eventType", "", true},
		{"{nope}", "", true},
		{strings.Repeat("a", 256), "", true},
	}
	for _, tt := range tests {
		name := tt.tmpl
		if len(name) > 20 {
			name = "too long"
		}
		t.Run(name, func(t *testing.T) {
			rk, err := ParseRoutingKey(tt.tmpl)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got := rk.Render("identity.user.created", "user", "identity-service"); err == nil && got != tt.want {
				t.Errorf("Render = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	ok := Config{Brokers: []string{"k:9092"}, Topics: []string{"events"}, Group: "g", AMQPURL: "amqp://r/", Store: &memStore{}}
	tests := []struct {
		name   string
		modify func(*Config)
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }},
		{"no topics", func(c *Config) { c.Topics = nil }},
		{"no group", func(c *Config) { c.Group = "" }},
		{"no AMQP URL", func(c *Config) { c.AMQPURL = "" }},
		{"no store", func(c *Config) { c.Store = nil }},
		{"negative batch", func(c *Config) { c.BatchSize = -1 }},
		{"bad policy", func(c *Config) { c.Unroutable = "requeue" }},
		{"bad template", func(c *Config) { c.RoutingKey = "{x}" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.modify(&c)
			if _, err := New(c); err == nil {
				t.Fatal("New accepted an invalid Config")
			}
		})
	}
	b, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	if c := b.cfg; c.BatchSize != DefaultBatchSize || c.MaxRecordBytes != DefaultMaxRecordBytes || c.Exchange != DefaultExchange ||
		c.Unroutable != UnroutableDrop || c.RoutingKey != DefaultRoutingKey || c.NackAttempts != DefaultNackAttempts {
		t.Errorf("defaults not applied: %+v", c)
	}
	if s := b.sarama; s.Consumer.Offsets.Initial != sarama.OffsetOldest || !s.Producer.Idempotent ||
		s.Consumer.Group.Rebalance.GroupStrategies[0].Name() != sarama.CooperativeStickyBalanceStrategyName {
		t.Errorf("sarama configuration lacks what the guarantees rest on")
	}
}

// Pins DESIGN §6: a replay's key is stable, differs per replay id and from
// the event id.
func TestReplayKey(t *testing.T) {
	id := uuid.MustParse("9b2c4f1e-0000-4000-8000-000000000001")
	if ReplayKey(id, "") != id {
		t.Error("a record without replayId must dedup on its event id")
	}
	a, b := ReplayKey(id, "r1"), ReplayKey(id, "r2")
	if a == id || a == b || a != ReplayKey(id, "r1") || a.Version() != 5 {
		t.Errorf("replay keys %s, %s: want stable, distinct UUIDv5s", a, b)
	}
}
