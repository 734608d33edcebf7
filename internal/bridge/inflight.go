package bridge

import (
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxInflightBytes is the default [Config.MaxInflightBytes].
const DefaultMaxInflightBytes = 64 << 20

// fetchBuffer is the sarama claim channel's size: each partition's intake
// takes records out of it as they arrive, and records waiting there are
// not counted against the budget (sarama fills it before ConsumeClaim
// even starts), so it holds one.
const fetchBuffer = 1

// gate counts the reasons each partition is paused for (an open breaker,
// the byte budget), so that one lifting its pause does not resume a
// partition the other still holds. It is safe for concurrent use.
type gate struct {
	mu   sync.Mutex
	to   pauser
	held map[topicPartition]int
}

type topicPartition struct {
	topic string
	part  int32
}

func newGate(to pauser) *gate { return &gate{to: to, held: make(map[topicPartition]int)} }

// Pause implements pauser: it pauses the partitions not paused yet.
func (g *gate) Pause(partitions map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m := g.step(partitions, 1); len(m) > 0 {
		g.to.Pause(m)
	}
}

// Resume implements pauser: it resumes the partitions no reason holds.
func (g *gate) Resume(partitions map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m := g.step(partitions, -1); len(m) > 0 {
		g.to.Resume(m)
	}
}

// step adds d to the partitions' counts and returns those whose count
// crossed between zero and one.
func (g *gate) step(partitions map[string][]int32, d int) map[string][]int32 {
	out := make(map[string][]int32)
	for topic, parts := range partitions {
		for _, p := range parts {
			tp := topicPartition{topic, p}
			before := g.held[tp]
			after := max(0, before+d)
			if after == 0 {
				delete(g.held, tp)
			} else {
				g.held[tp] = after
			}
			if (before == 0) != (after == 0) {
				out[topic] = append(out[topic], p)
			}
		}
	}
	return out
}

// budget counts the record bytes taken from Kafka and not yet resolved,
// across all partitions; at max it pauses fetching of every claimed
// partition and resumes it once below. Records that arrive while paused
// (fetched before the pause) are still taken: nothing waits, nothing is
// dropped or reordered, and the budget is exceeded by at most what was
// already fetched. It is safe for concurrent use.
type budget struct {
	max   int64
	gate  *gate
	gauge prometheus.Gauge

	mu      sync.Mutex
	used    int64
	claimed map[topicPartition]struct{}
	paused  map[string][]int32 // what the budget paused; nil while fetching
}

func newBudget(max int64, reg prometheus.Registerer) (*budget, error) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "messagekit_bridge_inflight_bytes",
		Help: "Record bytes taken from Kafka and not yet confirmed and recorded, across partitions (BRIDGE_MAX_INFLIGHT_BYTES bounds it).",
	})
	if reg != nil {
		if err := reg.Register(g); err != nil {
			return nil, fmt.Errorf("bridge: register metrics: %w", err)
		}
	}
	return &budget{max: max, gauge: g, claimed: make(map[topicPartition]struct{})}, nil
}

// claim adds a claimed partition to those paused at the budget; release
// removes it, resuming it first if the budget paused it.
func (b *budget) claim(topic string, part int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.claimed[topicPartition{topic, part}] = struct{}{}
	if b.paused != nil {
		one := map[string][]int32{topic: {part}}
		b.paused[topic] = append(b.paused[topic], part)
		b.gate.Pause(one)
	}
}

func (b *budget) release(topic string, part int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.claimed, topicPartition{topic, part})
	if b.paused == nil {
		return
	}
	for i, p := range b.paused[topic] {
		if p == part {
			b.paused[topic] = append(b.paused[topic][:i], b.paused[topic][i+1:]...)
			b.gate.Resume(map[string][]int32{topic: {part}})
			break
		}
	}
}

// take counts n bytes, pausing fetching when they reach the budget.
func (b *budget) take(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used += n
	b.gauge.Set(float64(b.used))

	if b.used >= b.max && b.paused == nil && b.gate != nil {
		b.paused = make(map[string][]int32, 1)
		for tp := range b.claimed {
			b.paused[tp.topic] = append(b.paused[tp.topic], tp.part)
		}
		b.gate.Pause(b.paused)
	}
}

// give returns n bytes, resuming fetching when below the budget.
func (b *budget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.gauge.Set(float64(b.used))
	if b.used < b.max && b.paused != nil {
		b.gate.Resume(b.paused)
		b.paused = nil
	}
}

// recordBytes is what a record counts against the budget.
func recordBytes(m *sarama.ConsumerMessage) int64 {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		if h != nil {
			n += len(h.Key) + len(h.Value)
		}
	}
	return int64(n)
}

// intake moves claim's records into a channel of its own as they arrive,
// counting each against b, so that records wait counted rather than in
// sarama's buffer. It returns that channel, closed when claim's is, and a
// stop function: it ends the intake and gives back the bytes of the
// records still in the channel; call it once the channel is no longer
// read.
func intake(b *budget, in <-chan *sarama.ConsumerMessage, size int) (<-chan *sarama.ConsumerMessage, func()) {
	out := make(chan *sarama.ConsumerMessage, size)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer close(out)
		for {
			var m *sarama.ConsumerMessage
			var ok bool
			select {
			case m, ok = <-in:
				if !ok {
					return
				}
			case <-done:
				return
			}
			n := recordBytes(m)
			b.take(n)
			select {
			case out <- m:
			case <-done:
				b.give(n)
				return
			}
		}
	}()
	return out, func() {
		close(done)
		<-exited
		for m := range out {
			b.give(recordBytes(m))
		}
	}
}
