package adminapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/amqpdlq"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// TestReplayKeepsRawBytes pins that a RabbitMQ dead letter whose
// message_id, correlation_id or a header name holds invalid UTF-8 or NUL,
// dead-lettered by the broker, parsed as the bookkeeper parses it and
// stored, is replayed with those bytes unchanged (DESIGN.md §6: the replay
// keeps message_id and the headers), body included.
func TestReplayKeepsRawBytes(t *testing.T) {
	t.Parallel()
	b := testenv.RabbitMQ(t)
	e := newEnv(t, withQueues(t, b))
	ch := b.Channel(t)
	dlx, dlq := b.Name("dlx"), b.Name("dlq")
	if err := ch.ExchangeDeclare(dlx, "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	declareQueue(t, ch, dlq, nil)
	if err := ch.QueueBind(dlq, "", dlx, false, nil); err != nil {
		t.Fatal(err)
	}
	q := declareQueue(t, ch, b.Name("orders"), amqp.Table{"x-dead-letter-exchange": dlx})
	sent := amqp.Publishing{
		MessageId: "evt\x00\xff\xfe", CorrelationId: "corr\xc3", Type: "sales.order.placed",
		Headers: amqp.Table{"tenant\xff": "acme\x00", "plain": "p"}, Body: []byte("{\x00\xff}"),
	}
	if err := ch.PublishWithContext(testCtx(t), "", q, true, false, sent); err != nil {
		t.Fatal(err)
	}
	d := getOne(t, ch, q)
	if err := d.Nack(false, false); err != nil { // the consumer rejects it: dead-lettered
		t.Fatal(err)
	}
	dead := getOne(t, ch, dlq)
	if err := dead.Ack(false); err != nil {
		t.Fatal(err)
	}
	letter := amqpdlq.Parse(&dead, dlq)
	ids := e.record(t, letter.DeadLetter)

	r := e.post(t, fmt.Sprintf("/api/v1/dead-letters/%d/replay", ids[0]), "")
	if r.status != http.StatusOK {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	got := getOne(t, ch, q)
	if got.MessageId != sent.MessageId || got.CorrelationId != sent.CorrelationId || got.Type != sent.Type ||
		!bytes.Equal(got.Body, sent.Body) {
		t.Errorf("replayed message_id %q correlation_id %q type %q body %q; want %q %q %q %q",
			got.MessageId, got.CorrelationId, got.Type, got.Body, sent.MessageId, sent.CorrelationId, sent.Type, sent.Body)
	}
	for k, want := range sent.Headers {
		if v, ok := got.Headers[k]; !ok || v != want {
			t.Errorf("header %q = %#v (present %v), want %#v; got headers %#v", k, v, ok, want, got.Headers)
		}
	}
}
