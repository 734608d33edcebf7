package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/bridge"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// benchRecordsVariable sets the record count of BenchmarkBridge.
const benchRecordsVariable = "MESSAGEKIT_BENCH_RECORDS"

const (
	benchPartitions   = 8
	benchEnvelopeSize = 1024 // bytes of one record's value (the envelope's JSON)
	benchAMQPWindow   = 500  // publishes in flight before waiting for their confirms
)

func mustB(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// benchData is the one data set of BenchmarkBridge: n records of 1 KiB
// envelopes, spread round-robin over benchPartitions partitions of a kfake
// topic.
type benchData struct {
	n       int
	brokers []string
	topic   string
	ids     [][]uuid.UUID // dedup keys per partition, in offset order
	bodies  [][]byte      // every record's value, for the AMQP ceiling
	db      *testenv.Database
	rmq     *testenv.Broker
}

func benchRecords(b *testing.B) int {
	n := 100_000
	if s := os.Getenv(benchRecordsVariable); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("%s=%q: want a positive integer", benchRecordsVariable, s)
		}
		n = v
	}
	return n
}

// envelope1KiB returns the JSON of an envelope of exactly benchEnvelopeSize
// bytes, padding its data.
func envelope1KiB(b *testing.B, seq int) (contracts.Envelope, []byte) {
	pad := 0
	for range 3 {
		env, err := contracts.New("bench.item.recorded", fmt.Sprintf("agg-%d", seq%1000), "bench-service",
			map[string]any{"seq": seq, "pad": strings.Repeat("x", pad)},
			contracts.WithCorrelationID(fmt.Sprintf("corr-%d", seq)))
		mustB(b, err)
		value, err := json.Marshal(env)
		mustB(b, err)
		if len(value) == benchEnvelopeSize {
			return env, value
		}
		pad += benchEnvelopeSize - len(value)
		if pad < 0 {
			b.Fatalf("envelope is %d bytes without padding", len(value))
		}
	}
	b.Fatal("could not size the envelope to 1 KiB")
	return contracts.Envelope{}, nil
}

func newBenchData(b *testing.B) *benchData {
	d := &benchData{n: benchRecords(b)}
	d.db = testenv.MigratedPostgres(b)
	d.rmq = testenv.RabbitMQ(b)
	d.topic = testenv.UniqueName(b, "bench")
	k := testenv.KafkaWith(b, testenv.KafkaOptions{Partitions: benchPartitions,
		Topics: []string{d.topic, d.topic + contracts.DLQTopicSuffix}})
	d.brokers = k.Brokers
	producer, err := kgo.NewClient(kgo.SeedBrokers(d.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(4<<20), kgo.ProducerLinger(5*time.Millisecond))
	mustB(b, err)
	defer producer.Close()
	d.ids = make([][]uuid.UUID, benchPartitions)
	d.bodies = make([][]byte, 0, d.n)
	const chunk = 2000
	recs := make([]*kgo.Record, 0, chunk)
	for i := 0; i < d.n; i++ {
		env, value := envelope1KiB(b, i)
		p := int32(i % benchPartitions)
		d.ids[p] = append(d.ids[p], env.EventID)
		d.bodies = append(d.bodies, value)
		recs = append(recs, &kgo.Record{Topic: d.topic, Partition: p, Key: []byte(env.AggregateID), Value: value,
			Headers: []kgo.RecordHeader{
				{Key: contracts.KafkaHeaderID, Value: []byte(env.EventID.String())},
				{Key: contracts.KafkaHeaderEventType, Value: []byte(env.EventType)},
			}})
		if len(recs) == chunk || i == d.n-1 {
			mustB(b, producer.ProduceSync(context.Background(), recs...).FirstErr())
			recs = recs[:0]
		}
	}
	return d
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	mustB(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSMB is the process's peak resident set size (Maxrss is KiB on Linux).
func peakRSSMB(b *testing.B) float64 {
	var ru syscall.Rusage
	mustB(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return float64(ru.Maxrss) / 1024
}

// BenchmarkBridge measures, on one data set (N records of 1 KiB envelopes
// over 8 kfake partitions, N from MESSAGEKIT_BENCH_RECORDS, default
// 100,000), the ceilings of the bridge's three dependencies and the bridge
// end to end (issue 5):
//
//	go test -run '^$' -bench BenchmarkBridge -benchtime 1x ./internal/bridge/
//
// ceiling=amqp-publish runs first, so that end-to-end can report its share
// of it (pct_of_amqp_ceiling). cpu_us/record and peak_rss_MB are of the
// whole test process, which also runs kfake (holding the N records in
// memory) and the benchmark's own clients: upper bounds of the bridge's.
func BenchmarkBridge(b *testing.B) {
	d := newBenchData(b)
	b.Logf("%d records of %d bytes over %d partitions; peak RSS after producing them: %.0f MB",
		d.n, benchEnvelopeSize, benchPartitions, peakRSSMB(b))
	var amqpCeiling float64
	b.Run("ceiling=amqp-publish", func(b *testing.B) { amqpCeiling = benchAMQPPublish(b, d) })
	b.Run("end-to-end", func(b *testing.B) { benchEndToEnd(b, d, amqpCeiling) })
	b.Run("ceiling=kafka-consume", func(b *testing.B) { benchKafkaConsume(b, d) })
	b.Run("ceiling=pg-dedup", func(b *testing.B) { benchPGDedup(b, d) })
}

// benchAMQPPublish publishes the N bodies as persistent messages to one
// durable classic queue, benchAMQPWindow in flight with deferred confirms,
// and returns records/s.
func benchAMQPPublish(b *testing.B, d *benchData) float64 {
	conn := d.rmq.Dial(b)
	ch, err := conn.Channel()
	mustB(b, err)
	defer func() { _ = ch.Close() }()
	mustB(b, ch.Confirm(false))
	queue := d.rmq.Name("bench-ceiling-q")
	_, err = ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "classic"})
	mustB(b, err)
	ctx := context.Background()
	var rate float64
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		window := make([]*amqp.DeferredConfirmation, 0, benchAMQPWindow)
		flush := func() {
			for _, c := range window {
				ok, err := c.WaitContext(ctx)
				mustB(b, err)
				if !ok {
					b.Fatal("publish nacked")
				}
			}
			window = window[:0]
		}
		for i, body := range d.bodies {
			c, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, amqp.Publishing{
				ContentType: contracts.ContentTypeJSON, DeliveryMode: amqp.Persistent,
				MessageId: strconv.Itoa(i), Body: body,
			})
			mustB(b, err)
			window = append(window, c)
			if len(window) == benchAMQPWindow {
				flush()
			}
		}
		flush()
		rate = float64(d.n) / time.Since(start).Seconds()
		b.StopTimer()
		_, err := ch.QueuePurge(queue, false)
		mustB(b, err)
		b.StartTimer()
	}
	b.ReportMetric(rate, "records/s")
	return rate
}

// benchEndToEnd runs a bridge with defaults from the start of the topic to
// an exchange with one durable classic queue bound "#", until the queue
// holds N messages and the group's committed offsets reach the end of every
// partition.
func benchEndToEnd(b *testing.B, d *benchData, amqpCeiling float64) {
	ch := d.rmq.Channel(b)
	exchange := d.rmq.Name("bench-x")
	queue := d.rmq.Name("bench-e2e-q")
	mustB(b, ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil))
	_, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "classic"})
	mustB(b, err)
	mustB(b, ch.QueueBind(queue, "#", exchange, false, nil))
	admin, err := sarama.NewClusterAdmin(d.brokers, benchSaramaConfig())
	mustB(b, err)
	defer func() { _ = admin.Close() }()
	parts := make([]int32, benchPartitions)
	for p := range parts {
		parts[p] = int32(p)
	}
	var rate, queuedRate, cpuPerRecord float64
	rssBefore := peakRSSMB(b) // kfake's copy of the data, the AMQP ceiling's run
	b.ResetTimer()
	for i := range b.N {
		group := testenv.UniqueName(b, fmt.Sprintf("bench-bridge-%d", i))
		br, err := bridge.New(bridge.Config{
			Brokers: d.brokers, Topics: []string{d.topic}, Group: group,
			AMQPURL: d.rmq.URL, Exchange: exchange,
			Store:   bridge.NewPostgresStore(d.db.Pool),
			Metrics: prometheus.NewRegistry(),
		})
		mustB(b, err)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		cpu0 := cpuTime(b)
		start := time.Now()
		go func() { errc <- br.Run(ctx) }()
		var queued time.Duration
		deadline := start.Add(10 * time.Minute)
		for {
			if queued == 0 {
				q, err := ch.QueueDeclarePassive(queue, true, false, false, false, amqp.Table{"x-queue-type": "classic"})
				mustB(b, err)
				if q.Messages >= d.n {
					queued = time.Since(start)
				}
			}
			if queued != 0 && committedToEnd(b, admin, group, d, parts) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("end-to-end run did not finish within 10 minutes")
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
		elapsed := time.Since(start)
		cpu := cpuTime(b) - cpu0
		cancel()
		mustB(b, <-errc)
		rate = float64(d.n) / elapsed.Seconds()
		queuedRate = float64(d.n) / queued.Seconds()
		cpuPerRecord = float64(cpu.Microseconds()) / float64(d.n)
		b.StopTimer()
		_, err = ch.QueuePurge(queue, false)
		mustB(b, err)
		b.StartTimer()
	}
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(queuedRate, "queued_records/s")
	if amqpCeiling > 0 {
		b.ReportMetric(100*rate/amqpCeiling, "pct_of_amqp_ceiling")
	}
	b.ReportMetric(cpuPerRecord, "cpu_us/record")
	b.ReportMetric(peakRSSMB(b), "peak_rss_MB")
	b.ReportMetric(rssBefore, "peak_rss_before_MB")
	b.Log("cpu_us/record and peak_rss_MB are of the whole process (kfake with the N records, the benchmark's clients): upper bounds")
}

// committedToEnd reports whether group committed offset N/partitions of
// every partition.
func committedToEnd(b *testing.B, admin sarama.ClusterAdmin, group string, d *benchData, parts []int32) bool {
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{d.topic: parts})
	mustB(b, err)
	for _, p := range parts {
		blk := resp.GetBlock(d.topic, p)
		if blk == nil || blk.Offset < int64(len(d.ids[p])) {
			return false
		}
	}
	return true
}

func benchSaramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	return cfg
}

// countHandler marks every message and counts them.
type countHandler struct {
	want int64
	n    atomic.Int64
	once sync.Once
	done chan struct{}
}

func (*countHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*countHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *countHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		s.MarkMessage(m, "")
		if h.n.Add(1) == h.want {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

// benchKafkaConsume consumes the N records with a sarama consumer group
// (the bridge's client and balance strategy), marking every offset and
// doing nothing else; the clock runs from the group's start (join
// included, as in end-to-end) to the N-th record.
func benchKafkaConsume(b *testing.B, d *benchData) {
	var rate float64
	b.ResetTimer()
	for i := range b.N {
		group, err := sarama.NewConsumerGroup(d.brokers, testenv.UniqueName(b, fmt.Sprintf("bench-ceiling-%d", i)), benchSaramaConfig())
		mustB(b, err)
		h := &countHandler{want: int64(d.n), done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		exited := make(chan struct{})
		start := time.Now()
		go func() {
			defer close(exited)
			for ctx.Err() == nil {
				if err := group.Consume(ctx, []string{d.topic}, h); err != nil {
					return
				}
			}
		}()
		select {
		case <-h.done:
		case <-time.After(10 * time.Minute):
			b.Fatalf("consumed %d of %d records", h.n.Load(), d.n)
		}
		rate = float64(d.n) / time.Since(start).Seconds()
		b.StopTimer()
		cancel()
		<-exited
		mustB(b, group.Close())
		b.StartTimer()
	}
	b.ReportMetric(rate, "records/s")
}

// benchPGDedup runs the bridge's dedup round trips on the N keys through
// bridge.PostgresStore: per partition, concurrently as the bridge does,
// Processed then Record of each batch of bridge.DefaultBatchSize keys.
func benchPGDedup(b *testing.B, d *benchData) {
	store := bridge.NewPostgresStore(d.db.Pool)
	ctx := context.Background()
	var rate float64
	b.ResetTimer()
	for i := range b.N {
		consumer := fmt.Sprintf("bench-dedup-%d", i)
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, benchPartitions)
		for p := range benchPartitions {
			wg.Add(1)
			go func(keys []uuid.UUID) {
				defer wg.Done()
				for j := 0; j < len(keys); j += bridge.DefaultBatchSize {
					batch := keys[j:min(j+bridge.DefaultBatchSize, len(keys))]
					found, err := store.Processed(ctx, consumer, batch)
					if err != nil {
						errs <- err
						return
					}
					for _, f := range found {
						if f {
							errs <- fmt.Errorf("key already processed")
							return
						}
					}
					if err := store.Record(ctx, consumer, batch); err != nil {
						errs <- err
						return
					}
				}
			}(d.ids[p])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			mustB(b, err)
		}
		rate = float64(d.n) / time.Since(start).Seconds()
	}
	b.ReportMetric(rate, "records/s")
}
