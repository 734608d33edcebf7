package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// aggregates is how many aggregate ids the records are keyed by.
const aggregates = 1000

// envelopes builds valid envelopes (pkg/contracts) of exactly size bytes of
// JSON, padding their data. Safe for concurrent use.
type envelopes struct {
	size int
	// orders makes data an order of the -catalog schema instead of
	// {"seq", "pad"}.
	orders bool
	mu     sync.Mutex
	pad    int // the last padding that gave size bytes
}

// make returns envelope seq, occurred at t (zero: now).
func (g *envelopes) make(seq int, t time.Time) (contracts.Envelope, []byte, error) {
	g.mu.Lock()
	pad := g.pad
	g.mu.Unlock()
	opts := []contracts.Option{contracts.WithCorrelationID(fmt.Sprintf("corr-%010d", seq))}
	if !t.IsZero() {
		opts = append(opts, contracts.WithOccurredAt(t))
	}
	for range 3 {
		var data any = map[string]any{"seq": seq, "pad": strings.Repeat("x", pad)}
		if g.orders {
			data = orderData(seq, pad)
		}
		env, err := contracts.New(routingKey, fmt.Sprintf("agg-%04d", seq%aggregates), "load-tool", data, opts...)
		if err != nil {
			return env, nil, err
		}
		value, err := env.MarshalJSON()
		if err != nil {
			return env, nil, err
		}
		if len(value) == g.size {
			g.mu.Lock()
			g.pad = pad
			g.mu.Unlock()
			return env, value, nil
		}
		pad += g.size - len(value)
		if pad < 0 {
			return env, nil, fmt.Errorf("an envelope is %d bytes without padding: -size %d is too small", len(value), g.size)
		}
	}
	return contracts.Envelope{}, nil, fmt.Errorf("cannot size an envelope to %d bytes", g.size)
}

// record is the Kafka record of env: key aggregateId, headers id and
// eventType, as Debezium's outbox router and outbox.Relay write them.
func record(topic string, env contracts.Envelope, value []byte) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(env.AggregateID), Value: value,
		Headers: []kgo.RecordHeader{
			{Key: contracts.KafkaHeaderID, Value: []byte(env.EventID.String())},
			{Key: contracts.KafkaHeaderEventType, Value: []byte(env.EventType)},
		}}
}

// newProducer returns a franz-go producer for brokers, partitioning by key
// (the aggregate), uncompressed, in record batches of at most batchBytes:
// what the outbox's producers write (outbox.Relay's sarama producer batches
// up to 1 MB, Debezium's Kafka Connect producer 16 KiB, neither compresses
// by default). The batch size matters to the bridge's memory: a fetch
// returns whole record batches.
func newProducer(brokers []string, linger time.Duration, batchBytes int) (*kgo.Client, error) {
	return kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(int32(batchBytes)),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(linger), kgo.MaxBufferedRecords(20000))
}

// preload produces n envelopes into t and counts them per partition. When
// keep is set it returns the values (for the RabbitMQ ceiling).
func preload(ctx context.Context, brokers []string, t *topic, gen *envelopes, n, batchBytes int, keep bool) ([][]byte, error) {
	cl, err := newProducer(brokers, 5*time.Millisecond, batchBytes)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var bodies [][]byte
	if keep {
		bodies = make([][]byte, 0, n)
	}
	counts := make([]atomic.Int64, len(t.counts))
	var firstErr atomic.Pointer[error]
	for i := range n {
		env, value, err := gen.make(i, time.Time{})
		if err != nil {
			return nil, err
		}
		if keep {
			bodies = append(bodies, value)
		}
		cl.Produce(ctx, record(t.name, env, value), func(r *kgo.Record, err error) {
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			counts[r.Partition].Add(1)
		})
		if p := firstErr.Load(); p != nil {
			return nil, *p
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	if p := firstErr.Load(); p != nil {
		return nil, *p
	}
	for p := range counts {
		t.counts[p] = counts[p].Load()
	}
	t.total = n
	return bodies, nil
}
