package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

func created(t *testing.T, orderID string) contracts.Envelope {
	t.Helper()
	env, err := orderCreated.New(orderID, "sales-service", OrderCreated{OrderID: orderID})
	must(t, err)
	return env
}

func lineAdded(t *testing.T, orderID string, lineNo int) contracts.Envelope {
	t.Helper()
	env, err := orderLineAdded.New(orderID, "sales-service", OrderLineAdded{OrderID: orderID, LineNo: lineNo})
	must(t, err)
	return env
}

// Events from the exchange are logged once each, even when RabbitMQ
// delivers one twice: the log row and the dedup claim commit together.
func TestLogsEachEventOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0)
	r.start(t)
	order, line := created(t, "o-1"), lineAdded(t, "o-1", 1)
	r.publish(t, order)
	r.publish(t, line)
	r.publish(t, order) // the same message again, as after a lost ack

	testenv.WaitFor(t, 30*time.Second, "the second delivery to be counted as a duplicate", func() bool {
		return r.metric(t, `messagekit_consumer_duplicates_total{consumer="fulfilment"}`) ==
			`messagekit_consumer_duplicates_total{consumer="fulfilment"} 1`
	})
	if got, want := r.logged(t), map[uuid.UUID]int{order.EventID: 1, line.EventID: 1}; !maps.Equal(got, want) {
		t.Fatalf("fulfilment_log rows per event %v, want %v", got, want)
	}
	rows, err := r.db.Pool.Query(context.Background(), "SELECT event_type, order_id, line_no FROM fulfilment_log ORDER BY seq")
	must(t, err)
	var got []string
	for rows.Next() {
		var eventType, orderID string
		var lineNo int
		must(t, rows.Scan(&eventType, &orderID, &lineNo))
		got = append(got, fmt.Sprint(eventType, " ", orderID, " ", lineNo))
	}
	must(t, rows.Err())
	if want := []string{"sales.order.created o-1 0", "sales.order.line-added o-1 1"}; !slices.Equal(got, want) {
		t.Errorf("fulfilment_log %q, want %q", got, want)
	}
	r.noMoreDeadLetters(t)
}

// With REJECT_FRACTION, the unlucky events are dead-lettered once, on
// first delivery, and nothing is logged for them; the lucky ones of the
// same batches are logged. Replayed from the dead letters, the unlucky
// events are logged once each and not dead-lettered again.
func TestDeadLettersUnluckyEventsThenAcceptsTheirReplay(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0.5)
	lucky, unlucky := map[uuid.UUID]bool{}, map[uuid.UUID]bool{}
	// Published before the service starts, so that they arrive together
	// and are handled in batches.
	for i := 0; len(lucky) < 3 || len(unlucky) < 3; i++ {
		env := created(t, fmt.Sprint("o-", i))
		if unluckiness(env.EventID) < 0.5 {
			if len(unlucky) == 3 {
				continue
			}
			unlucky[env.EventID] = true
		} else {
			if len(lucky) == 3 {
				continue
			}
			lucky[env.EventID] = true
		}
		r.publish(t, env)
	}
	r.start(t)

	letters := r.deadLetters(t, 3)
	for _, d := range letters {
		if !unlucky[uuid.MustParse(d.MessageId)] {
			t.Errorf("dead letter %s is not one of the unlucky events", d.MessageId)
		}
		if reason, queue := xDeath(d); reason != "rejected" || queue != r.cfg.ConsumerQueue {
			t.Errorf("dead letter %s: x-death reason %q queue %q, want rejected by %s", d.MessageId, reason, queue, r.cfg.ConsumerQueue)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "the lucky events to be logged", func() bool { return len(r.logged(t)) == 3 })
	for id, n := range r.logged(t) {
		if !lucky[id] || n != 1 {
			t.Errorf("event %s logged %d times; lucky: %v", id, n, lucky[id])
		}
	}
	var rejected []uuid.UUID
	rows, err := r.db.Pool.Query(context.Background(), "SELECT event_id FROM fulfilment_rejections")
	must(t, err)
	for rows.Next() {
		var id uuid.UUID
		must(t, rows.Scan(&id))
		rejected = append(rejected, id)
	}
	must(t, rows.Err())
	if len(rejected) != 3 || !unlucky[rejected[0]] || !unlucky[rejected[1]] || !unlucky[rejected[2]] {
		t.Errorf("fulfilment_rejections %v, want the 3 unlucky events", rejected)
	}
	if got := r.metric(t, "fulfilment_events_rejected_total"); got != "fulfilment_events_rejected_total 3" {
		t.Errorf("metric %q, want 3 rejected", got)
	}

	for _, d := range letters {
		r.replay(t, d)
	}
	testenv.WaitFor(t, 30*time.Second, "the replayed events to be logged", func() bool { return len(r.logged(t)) == 6 })
	for id, n := range r.logged(t) {
		if n != 1 {
			t.Errorf("event %s logged %d times", id, n)
		}
	}
	r.noMoreDeadLetters(t)
}

// An unlucky event delivered again without the replay header (as after a
// lost connection) is dead-lettered again, not taken for a replay.
func TestRedeliveryIsNotAReplay(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0.5)
	var env contracts.Envelope
	for i := 0; ; i++ {
		if env = created(t, fmt.Sprint("o-", i)); unluckiness(env.EventID) < 0.5 {
			break
		}
	}
	r.start(t)
	r.publish(t, env)
	first := r.deadLetters(t, 1)
	r.publish(t, env) // the same message again, not replayed
	second := r.deadLetters(t, 1)
	if first[0].MessageId != env.EventID.String() || second[0].MessageId != env.EventID.String() {
		t.Fatalf("dead letters %s and %s, want %s twice", first[0].MessageId, second[0].MessageId, env.EventID)
	}
	if n := len(r.logged(t)); n != 0 {
		t.Errorf("%d events logged, want none before a replay", n)
	}
	r.replay(t, second[0])
	testenv.WaitFor(t, 30*time.Second, "the replayed event to be logged", func() bool { return r.logged(t)[env.EventID] == 1 })
	r.noMoreDeadLetters(t)
}

// xDeath returns the reason and queue of a dead letter's latest death.
func xDeath(d amqp.Delivery) (reason, queue string) {
	deaths, _ := d.Headers["x-death"].([]any)
	if len(deaths) == 0 {
		return "", ""
	}
	death, _ := deaths[0].(amqp.Table)
	reason, _ = death["reason"].(string)
	queue, _ = death["queue"].(string)
	return reason, queue
}

// Messages that can never be handled are dead-lettered at once, not
// logged, and do not hold up the queue.
func TestDeadLettersPoison(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0)
	r.start(t)
	send := func(id, eventType string, body []byte) {
		r.send(t, "", r.cfg.ConsumerQueue, amqp.Publishing{MessageId: id, Type: eventType, Body: body})
	}
	encode := func(env contracts.Envelope) []byte {
		b, err := env.MarshalJSON()
		must(t, err)
		return b
	}
	noOrder, noLine := created(t, "o-1"), lineAdded(t, "o-1", 1)
	noOrder.Data = []byte(`{"orderId":""}`)
	noLine.Data = []byte(`{"orderId":"o-1","lineNo":0}`)
	unknown, err := contracts.New("sales.order.cancelled", "o-1", "sales-service", map[string]string{"orderId": "o-1"})
	must(t, err)
	send(uuid.NewString(), "", []byte(`not an envelope`))
	send(noOrder.EventID.String(), noOrder.EventType, encode(noOrder))
	send(noLine.EventID.String(), noLine.EventType, encode(noLine))
	send(unknown.EventID.String(), unknown.EventType, encode(unknown))
	good := created(t, "o-2")
	r.publish(t, good)

	r.deadLetters(t, 4)
	testenv.WaitFor(t, 30*time.Second, "the good event to be logged", func() bool { return r.logged(t)[good.EventID] == 1 })
	if n := len(r.logged(t)); n != 1 {
		t.Errorf("%d events logged, want only the good one", n)
	}
	r.noMoreDeadLetters(t)
}

// When RabbitMQ closes the connection the consumer reconnects by itself
// and goes on consuming.
func TestReconnectsWhenRabbitMQClosesTheConnection(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0)
	r.start(t)
	before := created(t, "o-1")
	r.publish(t, before)
	testenv.WaitFor(t, 30*time.Second, "the first event to be logged", func() bool { return r.logged(t)[before.EventID] == 1 })

	if n := r.broker.CloseConnections(t, r.cfg.AMQPConnectionName); n != 1 {
		t.Fatalf("closed %d connections named %s, want 1", n, r.cfg.AMQPConnectionName)
	}
	after := created(t, "o-2")
	r.publish(t, after)
	testenv.WaitFor(t, 30*time.Second, "the event sent after the close to be logged", func() bool {
		return r.logged(t)[after.EventID] == 1
	})
	if got := r.metric(t, `messagekit_consumer_reconnects_total{consumer="fulfilment"}`); got != `messagekit_consumer_reconnects_total{consumer="fulfilment"} 1` {
		t.Errorf("metric %q, want 1 reconnect", got)
	}
}
