package bridge_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// Pins BRIDGE_MAX_INFLIGHT_BYTES: with records far larger than a budget's
// share, the bytes in flight stay within the budget plus what was fetched
// before fetching paused (a record per partition and fetch), and every
// record arrives once, in its partition's order.
func TestInflightBytesBudget(t *testing.T) {
	const (
		partitions = 4
		perPart    = 16
		recordSize = 256 << 10
		budget     = 1 << 20
	)
	r := newRig(t, partitions, "#")
	pad := strings.Repeat("x", recordSize)
	var evs []event
	for i := range partitions * perPart {
		env, err := contracts.New("test.big.event", "agg", "test-service", map[string]any{"seq": i, "pad": pad})
		must(t, err)
		evs = append(evs, event{env: env, partition: int32(i % partitions), headers: map[string]string{contracts.KafkaHeaderID: env.EventID.String()}})
	}
	// One record batch per record, so one fetch of a partition can bring
	// as little as one record.
	for _, ev := range evs {
		r.produce(ev)
	}

	reg := prometheus.NewRegistry()
	cfg := r.config(reg)
	cfg.MaxInflightBytes = budget
	var peak atomic.Int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			if v := int64(metric(t, reg, "messagekit_bridge_inflight_bytes")); v > peak.Load() {
				peak.Store(v)
			}
		}
	}()
	r.start(cfg)
	got := r.waitFor(time.Minute, "every record", func(d []amqp.Delivery) bool { return len(d) >= len(evs) })
	close(done)
	<-sampled

	if len(got) != len(evs) {
		t.Errorf("%d deliveries of %d records", len(got), len(evs))
	}
	next := map[int32]int64{}
	for _, d := range got {
		p, off := d.Headers[contracts.AMQPHeaderKafkaPartition].(int32), d.Headers[contracts.AMQPHeaderKafkaOffset].(int64)
		if off != next[p] {
			t.Fatalf("partition %d: offset %d arrived when %d was next", p, off, next[p])
		}
		next[p]++
	}
	// Two fetch rounds can land after the pause: one record each per
	// partition.
	limit := int64(budget + 2*partitions*(recordSize+1024))
	if p := peak.Load(); p == 0 || p > limit {
		t.Errorf("peak in-flight bytes %d, want some and at most %d", p, limit)
	}
	t.Logf("peak in-flight bytes %d (budget %d)", peak.Load(), budget)
	testenvWaitZero(t, reg)
}

// testenvWaitZero waits for the budget to be given back in full once
// everything was delivered.
func testenvWaitZero(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, reg, "messagekit_bridge_inflight_bytes") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%v bytes still counted in flight after every record was delivered", metric(t, reg, "messagekit_bridge_inflight_bytes"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
