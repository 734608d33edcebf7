package bridge_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/firstunicorn/messagekit-go/internal/bridge"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// Pins DESIGN §8: one span per published record, the child of the trace
// context in the Kafka headers (a root span without one), whose own context
// is what the AMQP message carries.
func TestBridgeTracesEveryPublish(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, "#")
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	cfg := r.config(nil)
	cfg.TracerProvider = tp
	r.start(cfg)

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	traced := newEvent(t, typeCreated, "order-1", 1, 0)
	traced.headers[contracts.KafkaHeaderTraceparent] = "00-" + traceID + "-" + parentID + "-01"
	traced.headers[contracts.KafkaHeaderTracestate] = "vendor=x"
	untraced := newEvent(t, typeCreated, "order-2", 2, 0)
	recs := r.produce(traced, untraced)
	got := r.waitFor(20*time.Second, "both events", hasIDs(traced.env.EventID, untraced.env.EventID))

	spans := waitSpans(t, exp, 2)
	byID := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if kv.Key == "messaging.message.id" {
				byID[kv.Value.AsString()] = s
			}
		}
	}
	for i, ev := range []event{traced, untraced} {
		s, ok := byID[ev.env.EventID.String()]
		if !ok {
			t.Fatalf("no span with messaging.message.id %s in %d spans", ev.env.EventID, len(spans))
		}
		if s.Name != r.exchange+" publish" || s.SpanKind != trace.SpanKindConsumer {
			t.Errorf("span %q kind %v, want %q consumer", s.Name, s.SpanKind, r.exchange+" publish")
		}
		attrs := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes {
			attrs[kv.Key] = kv.Value
		}
		for k, want := range map[attribute.Key]string{
			"messaging.system": "rabbitmq", "messaging.destination.name": r.exchange,
			"messaging.rabbitmq.destination.routing_key": typeCreated, "messaging.kafka.source.topic": r.topic,
			"messaging.kafka.source.partition": "0", "messaging.kafka.offset": strconv.FormatInt(recs[i].Offset, 10),
		} {
			if got := attrs[k].String(); got != want {
				t.Errorf("span of %s: %s = %q, want %q", ev.env.EventID, k, got, want)
			}
		}
		var d amqp.Delivery
		for _, g := range got {
			if g.MessageId == ev.env.EventID.String() {
				d = g
			}
		}
		tp, _ := d.Headers[contracts.AMQPHeaderTraceparent].(string)
		wantTP := fmt.Sprintf("00-%s-%s-01", s.SpanContext.TraceID(), s.SpanContext.SpanID())
		if tp != wantTP {
			t.Errorf("delivery %s: traceparent %q, want the span's %q", d.MessageId, tp, wantTP)
		}
		if i == 0 {
			if s.SpanContext.TraceID().String() != traceID || s.Parent.SpanID().String() != parentID || !s.Parent.IsRemote() {
				t.Errorf("traced span: trace %s parent %s, want %s %s (remote)", s.SpanContext.TraceID(), s.Parent.SpanID(), traceID, parentID)
			}
			if ts := d.Headers[contracts.AMQPHeaderTracestate]; ts != "vendor=x" {
				t.Errorf("traced delivery: tracestate %v, want vendor=x", ts)
			}
		} else if s.Parent.IsValid() {
			t.Errorf("untraced span has parent %s, want a root span", s.Parent.SpanID())
		}
	}
}

// waitSpans polls exp until it holds n ended spans, failing after 10 s.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, n int) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		spans := exp.GetSpans()
		if len(spans) >= n {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spans, want %d", len(spans), n)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// Pins DESIGN §8: messagekit_bridge_consumer_lag_records{topic,partition}
// shows the records left to bridge and falls to 0 on every partition once
// all are delivered.
func TestBridgeConsumerLag(t *testing.T) {
	t.Parallel()
	const n, partitions = 600, 2
	r := newRig(t, partitions, "#")
	var ids []uuid.UUID
	var evs []event
	for i := range n {
		ev := newEvent(t, typeCreated, fmt.Sprintf("order-%d", i), i, int32(i%partitions))
		evs, ids = append(evs, ev), append(ids, ev.env.EventID)
	}
	r.produce(evs...)
	reg := prometheus.NewRegistry()
	cfg := r.config(reg)
	cfg.BatchSize = 20
	cfg.MaxRate = 300 // ~2 s for all: the lag is seen while it falls
	var maxLag atomic.Int64
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			for p := range partitions {
				v := int64(metric(t, reg, "messagekit_bridge_consumer_lag_records", "topic", r.topic, "partition", strconv.Itoa(p)))
				if v > maxLag.Load() {
					maxLag.Store(v)
				}
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond): // polling interval
			}
		}
	}()
	r.start(cfg)
	r.waitFor(30*time.Second, "every event", hasIDs(ids...))
	close(done)
	<-watched
	if m := maxLag.Load(); m <= 0 || m > n/partitions {
		t.Errorf("largest lag seen %d, want in (0, %d]", m, n/partitions)
	}
	waitLagZero(t, reg, r.topic, partitions)
}

// waitLagZero polls until the lag gauge of every partition of topic is
// present and 0, failing after 10 s.
func waitLagZero(t *testing.T, reg *prometheus.Registry, topic string, partitions int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p := range partitions {
		for {
			lag, found := gauge(t, reg, "messagekit_bridge_consumer_lag_records", topic, p)
			if found && lag == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("partition %d: lag %v (present %v), want 0", p, lag, found)
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}
}

// gauge returns the lag gauge of topic/partition and whether it exists.
func gauge(t *testing.T, reg *prometheus.Registry, name, topic string, partition int) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["topic"] == topic && labels["partition"] == strconv.Itoa(partition) {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// waitMetric polls until the counter name of reg is positive, failing after
// 30 s.
func waitMetric(t *testing.T, reg *prometheus.Registry, name, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for metric(t, reg, name) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// Pins DESIGN §2: two bridges in one group share the partitions; when one
// stops mid-stream the other takes its partitions over and no event is
// lost. Duplicates may only come from the stopped one's unmarked batches.
func TestBridgeTwoInstancesShareAndTakeOver(t *testing.T) {
	t.Parallel()
	const n, partitions, batch = 8000, 8, 50
	r := newRig(t, partitions, "#")
	var ids []uuid.UUID
	var evs []event
	for i := range n {
		ev := newEvent(t, typeCreated, fmt.Sprintf("order-%d", i%400), i, int32(i%400%partitions))
		evs, ids = append(evs, ev), append(ids, ev.env.EventID)
	}
	r.produce(evs...)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	cfgA, cfgB := r.config(regA), r.config(regB)
	for _, c := range []*bridge.Config{&cfgA, &cfgB} {
		c.BatchSize = batch
		c.MaxRate = 500 // 16 s for one alone: B joins and A stops mid-stream
	}
	cfgB.ConnectionName = "messagekit-bridge-b"
	stopA := r.start(cfgA)
	waitMetric(t, regA, "messagekit_bridge_published_total", "A to publish")
	r.start(cfgB)
	waitMetric(t, regB, "messagekit_bridge_published_total", "B to claim partitions and publish")
	if d := len(r.got()); d >= n {
		t.Fatalf("all %d events delivered before B joined; nothing left to take over", d)
	}
	must(t, stopA())
	pubA := metric(t, regA, "messagekit_bridge_published_total")
	for p := range partitions {
		if lag, found := gauge(t, regA, "messagekit_bridge_consumer_lag_records", r.topic, p); found {
			t.Errorf("stopped A still reports lag %v for partition %d; want it deleted", lag, p)
		}
	}
	pubBAtStop := metric(t, regB, "messagekit_bridge_published_total")
	got := r.waitFor(60*time.Second, "every event", hasIDs(ids...))

	pubB := metric(t, regB, "messagekit_bridge_published_total")
	if pubA+pubBAtStop >= n || pubB <= pubBAtStop {
		t.Errorf("published: A %v, B %v at A's stop and %v at the end; want B to take over the rest", pubA, pubBAtStop, pubB)
	}
	seen := make(map[string]int, n)
	for _, d := range got {
		seen[d.MessageId]++
	}
	dups := len(got) - len(seen)
	if dups > partitions*batch {
		t.Errorf("%d duplicates, want at most %d (partitions × batch size)", dups, partitions*batch)
	}
	if len(seen) != n {
		t.Errorf("%d distinct events delivered, want %d", len(seen), n)
	}
	waitLagZero(t, regB, r.topic, partitions)
	t.Logf("A published %v, B %v, duplicates %d", pubA, pubB, dups)
}
