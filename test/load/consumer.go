package main

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// consumerPrefetch bounds the unacknowledged deliveries: the tool acks
// every consumerAckEvery deliveries with multiple=true.
const (
	consumerPrefetch = 4000
	consumerAckEvery = 500
)

// sink receives the arrivals of one measurement.
type sink interface {
	arrive(d *amqp.Delivery, now time.Time)
}

// consumer drains the queue on a connection of its own and hands every
// delivery to the current sink.
type consumer struct {
	conn *amqp.Connection
	ch   *amqp.Channel
	sink atomic.Pointer[sink]
	done chan struct{}
	err  error
	// stray counts deliveries that arrived with no sink set.
	stray atomic.Int64
}

func startConsumer(amqpURL, queue string) (*consumer, error) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Qos(consumerPrefetch, 0, false)
	}
	var ds <-chan amqp.Delivery
	if err == nil {
		ds, err = ch.Consume(queue, "load-tool", false, true, false, false, nil)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("consume %s: %w", queue, err)
	}
	c := &consumer{conn: conn, ch: ch, done: make(chan struct{})}
	go c.run(ds)
	return c, nil
}

// run hands every delivery to the sink and acks with multiple=true every
// consumerAckEvery deliveries, and the rest when the queue pauses, all in
// one goroutine so that no tag is acked twice.
func (c *consumer) run(ds <-chan amqp.Delivery) {
	defer close(c.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last, acked uint64
	ack := func() bool {
		if last == acked {
			return true
		}
		if err := c.ch.Ack(last, true); err != nil {
			c.err = err
			return false
		}
		acked = last
		return true
	}
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				return
			}
			now := time.Now()
			if s := c.sink.Load(); s != nil {
				(*s).arrive(&d, now)
			} else {
				c.stray.Add(1)
			}
			last = d.DeliveryTag
			if last-acked >= consumerAckEvery && !ack() {
				return
			}
		case <-tick.C:
			if !ack() {
				return
			}
		}
	}
}

func (c *consumer) set(s sink) {
	if s == nil {
		c.sink.Store(nil)
		return
	}
	c.sink.Store(&s)
}

func (c *consumer) close() {
	_ = c.conn.Close()
	<-c.done
}

// counter counts the distinct (partition, offset) arrivals of a
// measurement of want records, calls marks at the thresholds it was given
// and closes done at want.
type counter struct {
	want int
	// topic, when set, is the x-kafka-topic of the measured messages;
	// others (a straggler of an earlier measurement) are only counted in
	// foreign.
	topic string

	mu         sync.Mutex
	seen       map[int32][]uint64 // bitset of offsets per partition
	n          int
	dups       int
	unknown    int
	foreign    int
	first      time.Time
	last       time.Time
	thresholds []int       // ascending arrival counts
	onMark     func(i int) // called (in the consumer goroutine) when thresholds[i] is reached
	done       chan struct{}
	doneOnce   sync.Once
	latencies  []time.Duration // rate mode: arrival − occurredAt of records occurring at or after from
	from       time.Time
	withLat    bool
	latSkipped int
}

func newCounter(want int) *counter {
	return &counter{want: want, seen: make(map[int32][]uint64), done: make(chan struct{})}
}

var occurredKey = []byte(`"occurredAt":"`)

func (c *counter) arrive(d *amqp.Delivery, now time.Time) {
	p, okP := d.Headers[contracts.AMQPHeaderKafkaPartition].(int32)
	off, okO := d.Headers[contracts.AMQPHeaderKafkaOffset].(int64)
	var occurred time.Time
	if c.withLat {
		if i := bytes.Index(d.Body, occurredKey); i >= 0 {
			s := d.Body[i+len(occurredKey):]
			if j := bytes.IndexByte(s, '"'); j > 0 {
				occurred, _ = time.Parse(time.RFC3339Nano, string(s[:j]))
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !okP || !okO || off < 0 {
		c.unknown++
		return
	}
	if t, _ := d.Headers[contracts.AMQPHeaderKafkaTopic].(string); c.topic != "" && t != c.topic {
		c.foreign++
		return
	}
	bits := c.seen[p]
	w := int(off / 64)
	if w >= len(bits) {
		bits = append(bits, make([]uint64, w+1-len(bits))...)
		c.seen[p] = bits
	}
	if bits[w]&(1<<(off%64)) != 0 {
		c.dups++
		return
	}
	bits[w] |= 1 << (off % 64)
	c.n++
	if c.n == 1 {
		c.first = now
	}
	c.last = now
	if c.withLat {
		if occurred.IsZero() {
			c.latSkipped++
		} else if !occurred.Before(c.from) {
			c.latencies = append(c.latencies, now.Sub(occurred))
		}
	}
	for len(c.thresholds) > 0 && c.n >= c.thresholds[0] {
		if c.onMark != nil {
			c.onMark(c.n)
		}
		c.thresholds = c.thresholds[1:]
	}
	if c.want > 0 && c.n >= c.want {
		c.doneOnce.Do(func() { close(c.done) })
	}
}

// snapshot returns the counts so far.
func (c *counter) snapshot() (n, dups int, first, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.dups, c.first, c.last
}
