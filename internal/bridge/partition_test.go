package bridge

import (
	"context"
	"errors"
	"fmt"
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
			n := p.process(context.Background(), batch)
			if n != len(batch) {
				t.Fatalf("process = %d; want %d", n, len(batch))
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
	if n := p.process(context.Background(), batch); n != 3 || len(dlq.sent) != 1 {
		t.Fatalf("process = %d with %d dead letters; want 3, 1", n, len(dlq.sent))
	}

	stop, cancel := context.WithCancel(context.Background())
	dlq = &fakeDLQ{fail: 1 << 30}
	store = &memStore{keys: map[uuid.UUID]bool{}}
	p = testPartition(t, store, &fakePublisher{ack: func(int64, int) bool { return true }, attempts: map[int64]int{}}, dlq)
	time.AfterFunc(50*time.Millisecond, cancel)
	n := p.process(stop, batch)
	if n != 1 {
		t.Fatalf("process = %d; want 1 (only the record before the dead letter)", n)
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
	if n := p.process(stop, messages(t, 3)); n != 0 {
		t.Fatalf("process = %d; want 0", n)
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
		{"negative fetch bytes", func(c *Config) { c.FetchMinBytes = -1 }},
		{"negative fetch wait", func(c *Config) { c.FetchMaxWait = -time.Millisecond }},
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
	// Records wait counted, in the intake's channel of a batch, not in
	// sarama's.
	if s := b.sarama; s.ChannelBufferSize != fetchBuffer || b.cfg.MaxInflightBytes != DefaultMaxInflightBytes {
		t.Errorf("claim buffer of %d records, budget %d bytes; want %d and %d", s.ChannelBufferSize, b.cfg.MaxInflightBytes, fetchBuffer, DefaultMaxInflightBytes)
	}
	if s := b.sarama; s.Consumer.Fetch.Min != DefaultFetchMinBytes || s.Consumer.MaxWaitTime != DefaultFetchMaxWait {
		t.Errorf("fetch min %d, max wait %v; want the defaults %d, %v", s.Consumer.Fetch.Min, s.Consumer.MaxWaitTime, DefaultFetchMinBytes, DefaultFetchMaxWait)
	}
	c := ok
	c.FetchMinBytes, c.FetchMaxWait = 1, 250*time.Millisecond
	if b, err = New(c); err != nil {
		t.Fatal(err)
	}
	if s := b.sarama; s.Consumer.Fetch.Min != 1 || s.Consumer.MaxWaitTime != 250*time.Millisecond {
		t.Errorf("fetch min %d, max wait %v; want 1, 250ms", s.Consumer.Fetch.Min, s.Consumer.MaxWaitTime)
	}
	// A caller's own sarama settings stand unless the fields say otherwise.
	c = ok
	c.Sarama = sarama.NewConfig()
	c.Sarama.Consumer.Fetch.Min, c.Sarama.Consumer.MaxWaitTime = 7, 300*time.Millisecond
	if b, err = New(c); err != nil {
		t.Fatal(err)
	}
	if s := b.sarama; s.Consumer.Fetch.Min != 7 || s.Consumer.MaxWaitTime != 300*time.Millisecond {
		t.Errorf("fetch min %d, max wait %v; want the caller's 7, 300ms", s.Consumer.Fetch.Min, s.Consumer.MaxWaitTime)
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

// brokenPublisher is a channel that fails: Publish of offset failPublishAt
// errs, and confirms of offsets from failConfirmFrom on are lost (-1: never).
type brokenPublisher struct {
	failPublishAt, failConfirmFrom int64
	closed                         bool
}

func (f *brokenPublisher) Publish(_ context.Context, _, _ string, msg amqp.Publishing) (confirmation, error) {
	off := msg.Headers[contracts.AMQPHeaderKafkaOffset].(int64)
	if off == f.failPublishAt {
		return nil, amqp.ErrClosed
	}
	return func(context.Context) (bool, error) {
		if f.failConfirmFrom >= 0 && off >= f.failConfirmFrom {
			return false, errChannelClosed
		}
		return true, nil
	}, nil
}

func (f *brokenPublisher) Returned() []amqp.Return { return nil }
func (f *brokenPublisher) close()                  { f.closed = true }

// Pins issue 5's reconnection at the partition: when the channel fails in a
// round, the old channel is closed, a new one is opened (retried with
// backoff), and exactly the unconfirmed records are published again, in
// Kafka order; the whole batch then resolves.
func TestProcessReconnectsAndRepublishesUnconfirmed(t *testing.T) {
	tests := []struct {
		name   string
		broken *brokenPublisher
		want   []int64 // offsets published on the new channel
	}{
		{"publish fails", &brokenPublisher{failPublishAt: 12, failConfirmFrom: -1}, []int64{12, 13}},
		{"confirms lost", &brokenPublisher{failPublishAt: -1, failConfirmFrom: 11}, []int64{11, 12, 13}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{keys: map[uuid.UUID]bool{}}
			good := &fakePublisher{ack: func(int64, int) bool { return true }, attempts: map[int64]int{}}
			p := testPartition(t, store, nil, &fakeDLQ{})
			p.pub = tt.broken
			opens := 0
			p.open = func() (publisher, error) {
				if opens++; opens == 1 {
					return nil, errors.New("connection refused")
				}
				return good, nil
			}
			if n := p.process(context.Background(), messages(t, 4)); n != 4 {
				t.Fatalf("process = %d, want 4", n)
			}
			if !tt.broken.closed || opens != 2 {
				t.Errorf("old channel closed %v, %d opens; want true, 2", tt.broken.closed, opens)
			}
			if fmt.Sprint(good.published) != fmt.Sprint(tt.want) {
				t.Errorf("republished %v, want %v", good.published, tt.want)
			}
			if len(store.keys) != 4 {
				t.Errorf("%d keys recorded, want 4", len(store.keys))
			}
		})
	}
}

// Pins that a partition that cannot reconnect before the stop marks none
// of the unconfirmed records.
func TestProcessStopWhileReconnectingMarksConfirmedPrefix(t *testing.T) {
	store := &memStore{keys: map[uuid.UUID]bool{}}
	p := testPartition(t, store, nil, &fakeDLQ{})
	p.pub = &brokenPublisher{failPublishAt: 12, failConfirmFrom: -1}
	p.open = func() (publisher, error) { return nil, errors.New("connection refused") }
	stop, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	if n := p.process(stop, messages(t, 4)); n != 2 {
		t.Fatalf("process = %d, want 2 (the confirmed offsets 10 and 11)", n)
	}
	if len(store.keys) != 2 {
		t.Errorf("%d keys recorded, want 2", len(store.keys))
	}
}

// fakePauser records Pause and Resume calls.
type fakePauser struct{ calls []string }

func (f *fakePauser) Pause(m map[string][]int32)  { f.calls = append(f.calls, fmt.Sprint("pause", m)) }
func (f *fakePauser) Resume(m map[string][]int32) { f.calls = append(f.calls, fmt.Sprint("resume", m)) }

// Pins issue 5's breaker at the partition: after BreakerFailures
// consecutive store failures the breaker opens, the partition pauses its
// own fetching once, probes after the breaker timeout, and resumes when the
// store answers; nothing is marked before.
func TestProcessBreakerPausesAndResumes(t *testing.T) {
	store := &memStore{keys: map[uuid.UUID]bool{}, fail: 7}
	p := testPartition(t, store, &fakePublisher{ack: func(int64, int) bool { return true }, attempts: map[int64]int{}}, &fakeDLQ{})
	// Far above the backoff before the fifth failure (16 ms), so that the
	// attempt after it finds the breaker still open however slow the
	// machine; at 20 ms a slow sleep let the breaker half-open first, and
	// the partition never paused.
	p.b.cfg.BreakerTimeout = 200 * time.Millisecond
	p.b.breaker = newBreaker(&p.b.cfg, p.b.metrics, p.b.log)
	pz := &fakePauser{}
	p.pause, p.topic, p.part = pz, "events", 3
	if err := p.b.Check(context.Background()); err != nil {
		t.Fatalf("Check before = %v, want nil", err)
	}
	if n := p.process(context.Background(), messages(t, 2)); n != 2 {
		t.Fatalf("process = %d, want 2", n)
	}
	want := []string{"pausemap[events:[3]]", "resumemap[events:[3]]"}
	if fmt.Sprint(pz.calls) != fmt.Sprint(want) {
		t.Errorf("pauser calls %v, want %v", pz.calls, want)
	}
	if err := p.b.Check(context.Background()); err != nil {
		t.Errorf("Check after = %v, want nil (closed)", err)
	}
}
