package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// ceilingResult is one RabbitMQ ceiling measurement.
type ceilingResult struct {
	Records int `json:"records"`
	// PublishRate is records over first publish to last confirm.
	PublishRate float64 `json:"publish_records_per_s"`
	// ArrivalRate is records over first to last arrival at the consumer,
	// the same measure as the bridge's rate.
	ArrivalRate float64 `json:"arrival_records_per_s"`
	Seconds     float64 `json:"seconds"`
}

// publishCeiling publishes bodies the way the bridge does: on one
// connection, one confirm-mode channel per partition, each publishing
// batches of batch messages (mandatory, persistent, the bridge's
// properties and headers) to the exchange with the bridge's routing key and
// waiting for every confirm of a batch before the next. The consumer counts
// the arrivals.
func publishCeiling(ctx context.Context, e *env, cons *consumer, bodies [][]byte, channels, batch int) (ceilingResult, error) {
	cnt := newCounter(len(bodies))
	cnt.topic = "load-ceiling." + randomHex(4)
	cons.set(cnt)
	defer cons.set(nil)
	conn, err := amqp.Dial(e.amqpURL)
	if err != nil {
		return ceilingResult{}, err
	}
	defer func() { _ = conn.Close() }()
	chans := make([]*amqp.Channel, channels)
	for i := range chans {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		if err != nil {
			return ceilingResult{}, fmt.Errorf("ceiling channel: %w", err)
		}
		// Returns are not expected (the queue is bound "#"); drain them so
		// the reader never blocks.
		go func(rs chan amqp.Return) {
			for range rs {
			}
		}(ch.NotifyReturn(make(chan amqp.Return, batch+1)))
		chans[i] = ch
	}
	now := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, channels)
	start := time.Now()
	for p, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = publishShare(ctx, e.exchange, cnt.topic, ch, bodies, int32(p), channels, batch, now)
		}()
	}
	wg.Wait()
	published := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return ceilingResult{}, err
		}
	}
	select {
	case <-cnt.done:
	case <-time.After(time.Minute):
		n, _, _, _ := cnt.snapshot()
		return ceilingResult{}, fmt.Errorf("ceiling: %d of %d messages arrived within a minute of the last confirm", n, len(bodies))
	case <-ctx.Done():
		return ceilingResult{}, ctx.Err()
	}
	_, _, first, last := cnt.snapshot()
	r := ceilingResult{Records: len(bodies), Seconds: published.Seconds(),
		PublishRate: float64(len(bodies)) / published.Seconds()}
	if d := last.Sub(first); d > 0 {
		r.ArrivalRate = float64(len(bodies)-1) / d.Seconds()
	}
	return r, nil
}

// publishShare publishes bodies p, p+channels, … on ch, batch at a time.
func publishShare(ctx context.Context, exchange, topic string, ch *amqp.Channel, bodies [][]byte, p int32, channels, batch int, ts time.Time) error {
	waits := make([]*amqp.DeferredConfirmation, 0, batch)
	flush := func() error {
		for _, c := range waits {
			ok, err := c.WaitContext(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("ceiling: RabbitMQ nacked a publish")
			}
		}
		waits = waits[:0]
		return nil
	}
	var off int64
	for i := int(p); i < len(bodies); i += channels {
		c, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, routingKey, true, false, amqp.Publishing{
			Headers: amqp.Table{
				contracts.AMQPHeaderAggregateID:    "agg-0000",
				contracts.AMQPHeaderKafkaTopic:     topic,
				contracts.AMQPHeaderKafkaPartition: p,
				contracts.AMQPHeaderKafkaOffset:    off,
			},
			ContentType:   contracts.ContentTypeJSON,
			DeliveryMode:  amqp.Persistent,
			CorrelationId: "corr-0000000000",
			MessageId:     "00000000-0000-7000-8000-000000000000",
			Timestamp:     ts,
			Type:          routingKey,
			AppId:         "load-tool",
			Body:          bodies[i],
		})
		if err != nil {
			return fmt.Errorf("ceiling publish: %w", err)
		}
		off++
		if waits = append(waits, c); len(waits) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// rateCeilingResult is the latency of the tool's own publisher at the rate
// mode's rate: what RabbitMQ alone adds.
type rateCeilingResult struct {
	Produced int     `json:"published"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
	MaxMS    float64 `json:"max_ms"`
}

// publishAtRate publishes envelopes stamped with the current time at
// o.rate per second for o.warmup plus o.duration, the way the bridge does
// at a fixed rate: one confirm-mode channel per partition, each taking
// what has accumulated (at most o.batch) as a batch, publishing it and
// waiting for its confirms. It reports the latency (arrival minus stamp) of
// the messages stamped after the warm-up.
func publishAtRate(ctx context.Context, o *options, e *env, cons *consumer, gen *envelopes) (rateCeilingResult, error) {
	var res rateCeilingResult
	cnt := newCounter(0)
	cnt.topic = "load-rate-ceiling." + randomHex(4)
	cnt.withLat = true
	start := time.Now()
	cnt.from = start.Add(o.warmup)
	end := cnt.from.Add(o.duration)
	cons.set(cnt)
	defer cons.set(nil)
	conn, err := amqp.Dial(e.amqpURL)
	if err != nil {
		return res, err
	}
	defer func() { _ = conn.Close() }()
	type msg struct {
		body []byte
		off  int64
	}
	queues := make([]chan msg, o.partitions)
	errs := make([]error, o.partitions)
	var wg sync.WaitGroup
	for p := range queues {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		if err != nil {
			return res, err
		}
		go func(rs chan amqp.Return) {
			for range rs {
			}
		}(ch.NotifyReturn(make(chan amqp.Return, o.batch+1)))
		q := make(chan msg, 100_000)
		queues[p] = q
		wg.Add(1)
		go func() {
			defer wg.Done()
			waits := make([]*amqp.DeferredConfirmation, 0, o.batch)
			for m := range q {
				batch := []msg{m}
			fill:
				for len(batch) < o.batch {
					select {
					case m, ok := <-q:
						if !ok {
							break fill
						}
						batch = append(batch, m)
					default:
						break fill
					}
				}
				for _, m := range batch {
					c, err := ch.PublishWithDeferredConfirmWithContext(ctx, e.exchange, routingKey, true, false, amqp.Publishing{
						Headers: amqp.Table{
							contracts.AMQPHeaderAggregateID:    "agg-0000",
							contracts.AMQPHeaderKafkaTopic:     cnt.topic,
							contracts.AMQPHeaderKafkaPartition: int32(p),
							contracts.AMQPHeaderKafkaOffset:    m.off,
						},
						ContentType: contracts.ContentTypeJSON, DeliveryMode: amqp.Persistent,
						MessageId: "00000000-0000-7000-8000-000000000000", Type: routingKey, AppId: "load-tool",
						Body: m.body,
					})
					if err != nil {
						errs[p] = err
						return
					}
					waits = append(waits, c)
				}
				for _, c := range waits {
					if _, err := c.WaitContext(ctx); err != nil {
						errs[p] = err
						return
					}
				}
				waits = waits[:0]
			}
		}()
	}
	sent := 0
	offs := make([]int64, o.partitions)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for now := time.Now(); now.Before(end); now = time.Now() {
		for want := int(o.rate * now.Sub(start).Seconds()); sent < want; sent++ {
			_, body, err := gen.make(sent, time.Now())
			if err != nil {
				return res, err
			}
			p := sent % o.partitions
			queues[p] <- msg{body, offs[p]}
			offs[p]++
			if !time.Now().Before(cnt.from) {
				res.Produced++
			}
		}
		<-tick.C
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return res, fmt.Errorf("rate ceiling: %w", err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if n, _, _, _ := cnt.snapshot(); n >= sent {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("rate ceiling: messages missing a minute after the last publish")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cnt.mu.Lock()
	lat := slices.Clone(cnt.latencies)
	cnt.mu.Unlock()
	slices.Sort(lat)
	if len(lat) > 0 {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		res.P50MS, res.P99MS, res.MaxMS = ms(lat[len(lat)/2]), ms(lat[min(len(lat)-1, len(lat)*99/100)]), ms(lat[len(lat)-1])
	}
	return res, nil
}
