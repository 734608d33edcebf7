package kafkaconsumer_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/kafkaconsumer"
)

const partitions = 3

type shipment struct {
	Seq  int    `json:"seq"`
	Fail string `json:"fail,omitempty"` // "permanent" makes the handler refuse it
}

var (
	shipmentSent      = contracts.Define[shipment]("logistics.shipment.sent")
	shipmentCancelled = contracts.Define[shipment]("logistics.shipment.cancelled")
)

// fixture is one test's Kafka cluster, database and handler bookkeeping.
type fixture struct {
	t       *testing.T
	brokers []string
	db      *testenv.Database
	kcl     *kgo.Client
	mu      sync.Mutex
	runs    map[uuid.UUID]int
	order   map[string][]int // aggregate → seqs in handling order
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	k := testenv.KafkaWith(t, testenv.KafkaOptions{Partitions: partitions, Topics: []string{"events", "events.dlq"}})
	kcl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	must(t, err)
	t.Cleanup(kcl.Close)
	f := &fixture{t: t, brokers: k.Brokers, db: testenv.MigratedPostgres(t), kcl: kcl,
		runs: map[uuid.UUID]int{}, order: map[string][]int{}}
	_, err = f.db.Pool.Exec(context.Background(), "CREATE TABLE effects (event_id uuid NOT NULL)")
	must(t, err)
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// router records each run and writes one effects row (no unique key, so
// handling twice would show).
func (f *fixture) router() *dedup.Router {
	var r dedup.Router
	dedup.On(&r, shipmentSent, func(ctx context.Context, tx pgx.Tx, s shipment) error {
		env, _ := dedup.EnvelopeFrom(ctx)
		// The handler sees its own record (an unhandled event would show).
		if m, ok := kafkaconsumer.MessageFrom(ctx); !ok || string(m.Key) != env.AggregateID {
			return dedup.Permanent(fmt.Errorf("event %s: no record, or another's, in the context", env.EventID))
		}
		f.mu.Lock()
		f.runs[env.EventID]++
		f.order[env.AggregateID] = append(f.order[env.AggregateID], s.Seq)
		f.mu.Unlock()
		if s.Fail == "permanent" {
			return dedup.Permanent(fmt.Errorf("shipment %d refused", s.Seq))
		}
		_, err := tx.Exec(ctx, "INSERT INTO effects (event_id) VALUES ($1)", env.EventID)
		return err
	})
	return &r
}

// record builds a Kafka record as the outbox writes it, on the partition
// of its aggregate.
func record[E any](t testing.TB, ev contracts.Event[E], aggregate int, data E) (*kgo.Record, contracts.Envelope) {
	t.Helper()
	env, err := ev.New(fmt.Sprint("shipment-", aggregate), "logistics-service", data)
	must(t, err)
	value, err := env.MarshalJSON()
	must(t, err)
	return &kgo.Record{
		Topic: "events", Partition: int32(aggregate % partitions), Key: []byte(env.AggregateID), Value: value,
		Timestamp: env.OccurredAt.Truncate(time.Millisecond),
		Headers: []kgo.RecordHeader{
			{Key: contracts.KafkaHeaderID, Value: []byte(env.EventID.String())},
			{Key: contracts.KafkaHeaderEventType, Value: []byte(env.EventType)},
		},
	}, env
}

func (f *fixture) produce(recs ...*kgo.Record) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(f.t, f.kcl.ProduceSync(ctx, recs...).FirstErr())
}

func (f *fixture) config(reg prometheus.Registerer) kafkaconsumer.Config {
	return kafkaconsumer.Config{
		Brokers: f.brokers, Topics: []string{"events"}, Consumer: "shipping",
		Store: dedup.NewPostgres(f.db.Pool), Handler: f.router(), MaxBatch: 8,
		Retry: dedup.Retry{MaxAttempts: 2, Backoff: time.Millisecond}, Metrics: reg,
	}
}

// start runs a consumer until the returned stop is called; stop returns
// Run's error.
func (f *fixture) start(cfg kafkaconsumer.Config) (stop func() error) {
	f.t.Helper()
	c, err := kafkaconsumer.New(cfg)
	must(f.t, err)
	return testenv.Run(f.t, c.Run)
}

func (f *fixture) effects() (distinct, twice int) {
	f.t.Helper()
	err := f.db.Pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE n > 1)
		FROM (SELECT event_id, count(*) AS n FROM effects GROUP BY event_id) e`).Scan(&distinct, &twice)
	must(f.t, err)
	return distinct, twice
}

// committedAtEnd checks that the group's committed offset of every
// non-empty partition of topic is the partition's end.
func (f *fixture) committedAtEnd(group, topic string) {
	f.t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	client, err := sarama.NewClient(f.brokers, cfg)
	must(f.t, err)
	defer func() { _ = client.Close() }()
	admin, err := sarama.NewClusterAdminFromClient(client)
	must(f.t, err)
	ps := []int32{0, 1, 2}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: ps})
	must(f.t, err)
	for _, p := range ps {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		must(f.t, err)
		block := resp.GetBlock(topic, p)
		if end == 0 && block != nil && block.Offset == -1 {
			continue // an empty partition has nothing to commit
		}
		if block == nil || block.Offset != end {
			f.t.Errorf("partition %d: committed %v, end %d", p, block, end)
		}
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// Each event is handled once, in partition order, duplicates (a producer's
// retries, and events a crashed predecessor committed but never marked)
// are skipped without running the handler, and offsets are committed to
// the end; a restarted consumer resumes there.
func TestHandlesOnceInOrderAndCommits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var recs []*kgo.Record
	var preclaimed []uuid.UUID
	for seq := range 30 {
		r, env := record(t, shipmentSent, seq%6, shipment{Seq: seq})
		recs = append(recs, r)
		if seq%5 == 0 { // a producer retry: the same record again, later
			recs = append(recs, r)
		}
		if seq%10 == 3 { // committed by a consumer that died before marking
			preclaimed = append(preclaimed, env.EventID)
		}
	}
	for _, id := range preclaimed {
		_, err := dedup.Handle(context.Background(), dedup.NewPostgres(f.db.Pool), "shipping", id,
			func(ctx context.Context, tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "INSERT INTO effects (event_id) VALUES ($1)", id)
				return err
			})
		must(t, err)
	}
	f.produce(recs...)

	reg := prometheus.NewRegistry()
	stop := f.start(f.config(reg))
	testenv.WaitFor(t, 30*time.Second, "27 handled and 9 duplicates", func() bool {
		return counter(t, reg, "messagekit_consumer_handled_total") == 27 &&
			counter(t, reg, "messagekit_consumer_duplicates_total") == 9
	})
	must(t, stop())
	if n, twice := f.effects(); n != 30 || twice != 0 {
		t.Fatalf("effects: %d events, %d twice; want 30 once each", n, twice)
	}
	f.mu.Lock()
	for _, id := range preclaimed {
		if f.runs[id] != 0 {
			t.Errorf("handler ran for %s, which a predecessor had committed", id)
		}
	}
	for agg, seqs := range f.order {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Errorf("aggregate %s handled out of order: %v", agg, seqs)
				break
			}
		}
	}
	f.mu.Unlock()
	f.committedAtEnd("shipping", "events")

	// A restart resumes at the committed offsets: one new record per
	// partition is handled and nothing before it comes back.
	var fresh []*kgo.Record
	for p := range partitions {
		r, _ := record(t, shipmentSent, p, shipment{Seq: 100 + p})
		fresh = append(fresh, r)
	}
	f.produce(fresh...)
	reg2 := prometheus.NewRegistry()
	stop = f.start(f.config(reg2))
	testenv.WaitFor(t, 30*time.Second, "the 3 new records", func() bool {
		return counter(t, reg2, "messagekit_consumer_handled_total") == 3
	})
	must(t, stop())
	if d := counter(t, reg2, "messagekit_consumer_duplicates_total"); d != 0 {
		t.Errorf("the restarted consumer saw %v old records again", d)
	}
}

// Poison goes to events.dlq in the Kafka Connect format: original key,
// value, headers and timestamp plus one set of __connect.errors.* headers
// naming the stage and this consumer; the partition keeps flowing and its
// offsets are committed past the poison.
func TestPoisonToDeadLetterTopic(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good := func(seq int) *kgo.Record { r, _ := record(t, shipmentSent, seq, shipment{Seq: seq}); return r }
	malformed := good(1)
	malformed.Value = []byte(`{"eventId":`)
	tombstone := good(2)
	tombstone.Value = nil
	notEnvelope := good(3)
	notEnvelope.Value = []byte(`{"shipment":3}`)
	mismatch := good(4)
	mismatch.Headers[0].Value = []byte(uuid.NewString())
	unknown, _ := record(t, shipmentCancelled, 5, shipment{Seq: 5})
	refused, _ := record(t, shipmentSent, 6, shipment{Seq: 6, Fail: "permanent"})
	// A replayed dead letter: its old __connect headers must not repeat.
	refused.Headers = append(refused.Headers,
		kgo.RecordHeader{Key: contracts.DLQHeaderStage, Value: []byte("DECODE")},
		kgo.RecordHeader{Key: contracts.KafkaHeaderTraceparent, Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")})
	poison := []struct {
		rec   *kgo.Record
		stage contracts.Stage
	}{
		{malformed, contracts.StageDecode}, {tombstone, contracts.StageDecode}, {notEnvelope, contracts.StageValidate},
		{mismatch, contracts.StageValidate}, {unknown, contracts.StageTaskPut}, {refused, contracts.StageTaskPut},
	}
	recs := []*kgo.Record{good(10), good(11), good(12)}
	for _, p := range poison {
		recs = append(recs, p.rec)
	}
	recs = append(recs, good(13), good(14), good(15))
	f.produce(recs...) // ProduceSync fills in each record's offset

	reg := prometheus.NewRegistry()
	stop := f.start(f.config(reg))
	dlq := f.readDLQ(len(poison))
	testenv.WaitFor(t, 30*time.Second, "6 good records", func() bool {
		return counter(t, reg, "messagekit_consumer_handled_total") == 6
	})
	must(t, stop())
	f.committedAtEnd("shipping", "events")

	for _, p := range poison {
		orig := p.rec
		key := fmt.Sprint(orig.Partition, "/", orig.Offset)
		got, ok := dlq[key]
		if !ok {
			t.Errorf("no dead letter for %s (stage %s)", key, p.stage)
			continue
		}
		if string(got.Key) != string(orig.Key) || string(got.Value) != string(orig.Value) ||
			(orig.Value == nil) != (got.Value == nil) || !got.Timestamp.Equal(orig.Timestamp) {
			t.Errorf("%s: dead letter %q=%q at %v, original %q=%q at %v",
				key, got.Key, got.Value, got.Timestamp, orig.Key, orig.Value, orig.Timestamp)
		}
		headers := map[string][]string{}
		for _, h := range got.Headers {
			headers[h.Key] = append(headers[h.Key], string(h.Value))
		}
		for _, h := range orig.Headers {
			if h.Key == contracts.DLQHeaderStage {
				continue
			}
			if v := headers[h.Key]; len(v) != 1 || v[0] != string(h.Value) {
				t.Errorf("%s: original header %s=%q became %q", key, h.Key, h.Value, v)
			}
		}
		want := map[string]string{
			contracts.DLQHeaderTopic: "events", contracts.DLQHeaderPartition: strconv.Itoa(int(orig.Partition)),
			contracts.DLQHeaderOffset: strconv.FormatInt(orig.Offset, 10), contracts.DLQHeaderConnectorName: "shipping",
			contracts.DLQHeaderTaskID: "0", contracts.DLQHeaderStage: string(p.stage),
			contracts.DLQHeaderClassName: "github.com/firstunicorn/messagekit-go/pkg/dedup/kafkaconsumer.Consumer",
		}
		for k, v := range want {
			if got := headers[k]; len(got) != 1 || got[0] != v {
				t.Errorf("%s: header %s = %q, want exactly %q", key, k, got, v)
			}
		}
		for _, k := range []string{contracts.DLQHeaderExceptionClassName, contracts.DLQHeaderExceptionMessage} {
			if got := headers[k]; len(got) != 1 || got[0] == "" {
				t.Errorf("%s: header %s = %q, want one non-empty value", key, k, got)
			}
		}
	}
	for _, tc := range []struct {
		reason string
		want   float64
	}{{"DECODE", 2}, {"VALIDATE", 2}, {"TASK_PUT", 2}} {
		if got := counter(t, reg, "messagekit_consumer_dead_lettered_total", "reason", tc.reason); got != tc.want {
			t.Errorf("dead_lettered_total{reason=%s} = %v, want %v", tc.reason, got, tc.want)
		}
	}
}

// readDLQ reads n records from events.dlq, keyed by their original
// "partition/offset".
func (f *fixture) readDLQ(n int) map[string]*kgo.Record {
	f.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.ConsumeTopics("events.dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	must(f.t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]*kgo.Record{}
	for len(out) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			f.t.Fatalf("read %d of %d dead letters", len(out), n)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			var p, o string
			for _, h := range r.Headers {
				switch h.Key {
				case contracts.DLQHeaderPartition:
					p = string(h.Value)
				case contracts.DLQHeaderOffset:
					o = string(h.Value)
				}
			}
			out[p+"/"+o] = r
		})
	}
	return out
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ok := kafkaconsumer.Config{Brokers: []string{"localhost:9092"}, Topics: []string{"events"}, Consumer: "c",
		Store: dedup.NewMemory(), Handler: dedup.Ignore}
	bad := sarama.NewConfig()
	bad.Version = sarama.V2_8_0_0
	bad.Consumer.Group.Session.Timeout = -1
	for _, tc := range []struct {
		name string
		edit func(*kafkaconsumer.Config)
	}{
		{"no brokers", func(c *kafkaconsumer.Config) { c.Brokers = nil }},
		{"no topics", func(c *kafkaconsumer.Config) { c.Topics = nil }},
		{"no consumer", func(c *kafkaconsumer.Config) { c.Consumer = "" }},
		{"no store", func(c *kafkaconsumer.Config) { c.Store = nil }},
		{"no handler", func(c *kafkaconsumer.Config) { c.Handler = nil }},
		{"negative batch", func(c *kafkaconsumer.Config) { c.MaxBatch = -1 }},
		{"invalid sarama config", func(c *kafkaconsumer.Config) { c.Sarama = bad }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			if _, err := kafkaconsumer.New(cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
	ok.Consumer = "billing service/v2" // not a valid client id as is
	if _, err := kafkaconsumer.New(ok); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

// An offset is committed only after its record's transaction committed:
// while a handler holds record 2 of a partition, the group's offset gets to
// 2 (records 0 and 1 done) and no further, however often sarama commits.
func TestOffsetMarkedOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var recs []*kgo.Record
	var envs []contracts.Envelope
	for seq := range 5 {
		r, env := record(t, shipmentSent, 0, shipment{Seq: seq}) // all on partition 0
		recs = append(recs, r)
		envs = append(envs, env)
	}
	f.produce(recs...)
	entered, release := make(chan struct{}), make(chan struct{})
	inner := f.router()
	cfg := f.config(prometheus.NewRegistry())
	cfg.MaxBatch = 1
	cfg.Handler = dedup.HandlerFunc(func(ctx context.Context, tx pgx.Tx, env contracts.Envelope) error {
		if env.EventID == envs[2].EventID {
			close(entered)
			<-release
		}
		return inner.HandleEvent(ctx, tx, env)
	})
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_8_0_0
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Interval = 20 * time.Millisecond
	cfg.Sarama = sc
	stop := f.start(cfg)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before stop's cleanup, also when the test fails
	<-entered

	committed := func() int64 {
		client, err := sarama.NewClient(f.brokers, sc)
		must(t, err)
		defer func() { _ = client.Close() }()
		admin, err := sarama.NewClusterAdminFromClient(client)
		must(t, err)
		resp, err := admin.ListConsumerGroupOffsets("shipping", map[string][]int32{"events": {0}})
		must(t, err)
		return resp.GetBlock("events", 0).Offset
	}
	testenv.WaitFor(t, 10*time.Second, "records 0 and 1 to be committed", func() bool { return committed() == 2 })
	// Some 15 auto-commit intervals while record 2's transaction is open.
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		if c := committed(); c != 2 {
			t.Fatalf("committed offset %d while record 2 was being handled", c)
		}
	}
	unblock()
	testenv.WaitFor(t, 10*time.Second, "all 5 handled", func() bool { n, _ := f.effects(); return n == 5 })
	must(t, stop())
	f.committedAtEnd("shipping", "events")
}
