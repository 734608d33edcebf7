package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/bridge"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// rig is one test's Kafka topic, RabbitMQ exchange with a queue bound to
// it, and database.
type rig struct {
	t          *testing.T
	partitions int32
	topic      string
	brokers    []string
	db         *testenv.Database
	rmq        *testenv.Broker
	exchange   string
	group      string
	producer   *kgo.Client

	mu         sync.Mutex
	deliveries []amqp.Delivery
}

// newRig sets a test up; binding is the queue's binding key ("#" for all).
func newRig(t *testing.T, partitions int32, binding string) *rig {
	t.Helper()
	db := testenv.MigratedPostgres(t)
	rmq := testenv.RabbitMQ(t)
	topic := testenv.UniqueName(t, "events")
	k := testenv.KafkaWith(t, testenv.KafkaOptions{Partitions: partitions, Topics: []string{topic, topic + contracts.DLQTopicSuffix}})
	r := &rig{
		t: t, partitions: partitions, topic: topic, brokers: k.Brokers, db: db, rmq: rmq,
		exchange: rmq.Name("bridge-x"), group: testenv.UniqueName(t, "bridge"),
	}
	ch := rmq.Channel(t)
	queue := rmq.Name("bridge-q")
	must(t, ch.ExchangeDeclare(r.exchange, amqp.ExchangeTopic, true, false, false, false, nil))
	_, err := ch.QueueDeclare(queue, false, false, false, false, nil)
	must(t, err)
	must(t, ch.QueueBind(queue, binding, r.exchange, false, nil))
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	must(t, err)
	go func() {
		for d := range deliveries {
			r.mu.Lock()
			r.deliveries = append(r.deliveries, d)
			r.mu.Unlock()
		}
	}()
	r.producer, err = kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(4<<20))
	must(t, err)
	t.Cleanup(r.producer.Close)
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// config is the bridge configuration of the rig; tests adjust it.
func (r *rig) config(reg prometheus.Registerer) bridge.Config {
	return bridge.Config{
		Brokers: r.brokers, Topics: []string{r.topic}, Group: r.group,
		AMQPURL: r.rmq.URL, Exchange: r.exchange,
		Store:     bridge.NewPostgresStore(r.db.Pool),
		BatchSize: 100, BatchWait: 5 * time.Millisecond, Backoff: 20 * time.Millisecond,
		Logger:  slog.New(slog.NewTextHandler(r.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Metrics: reg,
	}
}

// start runs a bridge until the returned stop is called (or the test ends);
// stop returns Run's result.
func (r *rig) start(cfg bridge.Config) (stop func() error) {
	r.t.Helper()
	b, err := bridge.New(cfg)
	must(r.t, err)
	return r.run(b)
}

// run runs b until the returned stop is called (or the test ends); stop
// returns Run's result.
func (r *rig) run(b *bridge.Bridge) (stop func() error) {
	r.t.Helper()
	stop = testenv.Run(r.t, b.Run)
	r.t.Cleanup(func() {
		if err := stop(); err != nil {
			r.t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// event is a record to produce.
type event struct {
	env       contracts.Envelope
	partition int32
	headers   map[string]string
	value     []byte // nil: the envelope's JSON
	key       string // "": the aggregate id
}

func newEvent(t *testing.T, eventType, aggregate string, seq int, partition int32) event {
	t.Helper()
	env, err := contracts.New(eventType, aggregate, "test-service", map[string]int{"seq": seq},
		contracts.WithCorrelationID(fmt.Sprintf("corr-%d", seq)))
	must(t, err)
	return event{env: env, partition: partition, headers: map[string]string{
		contracts.KafkaHeaderID: env.EventID.String(), contracts.KafkaHeaderEventType: eventType,
	}}
}

// produce writes events in order and returns the produced records.
func (r *rig) produce(evs ...event) []*kgo.Record {
	r.t.Helper()
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		value := ev.value
		if value == nil {
			var err error
			value, err = json.Marshal(ev.env)
			must(r.t, err)
		}
		key := ev.key
		if key == "" {
			key = ev.env.AggregateID
		}
		rec := &kgo.Record{Topic: r.topic, Partition: ev.partition, Key: []byte(key), Value: value}
		for k, v := range ev.headers {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		recs[i] = rec
	}
	for i := 0; i < len(recs); i += 1000 {
		must(r.t, r.producer.ProduceSync(context.Background(), recs[i:min(i+1000, len(recs))]...).FirstErr())
	}
	return recs
}

// got returns a copy of the deliveries so far.
func (r *rig) got() []amqp.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]amqp.Delivery(nil), r.deliveries...)
}

// waitFor polls until cond holds for the deliveries, failing after d.
func (r *rig) waitFor(d time.Duration, what string, cond func([]amqp.Delivery) bool) []amqp.Delivery {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := r.got()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out after %v waiting for %s (%d deliveries)", d, what, len(got))
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// hasIDs reports whether every id was delivered.
func hasIDs(ids ...uuid.UUID) func([]amqp.Delivery) bool {
	return func(got []amqp.Delivery) bool {
		seen := make(map[string]bool, len(got))
		for _, d := range got {
			seen[d.MessageId] = true
		}
		for _, id := range ids {
			if !seen[id.String()] {
				return false
			}
		}
		return true
	}
}

// readDLQ reads n records from topic, failing after d.
func (r *rig) readDLQ(topic string, n int, d time.Duration) []*kgo.Record {
	r.t.Helper()
	return testenv.ReadRecords(r.t, r.brokers, topic, n, d)
}

// metric returns the value of a counter with the given labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}
