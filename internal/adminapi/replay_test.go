package adminapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/deadletter/amqpheaders"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/amqpconsumer"
)

// TestReplayRabbitMQEndToEnd pins DESIGN.md §6 for RabbitMQ: a message a
// pkg/dedup consumer rejected goes back to that consumer's queue only
// (not to another queue bound to the same exchange), with its message_id,
// x-replay-id and x-replay-count=1 and without x-death; the consumer's
// dedup lets it through and the row shows replayed once.
func TestReplayRabbitMQEndToEnd(t *testing.T) {
	t.Parallel()
	b := testenv.RabbitMQ(t)
	e := newEnv(t, withQueues(t, b))
	ch := b.Channel(t)
	ex, dlx := b.Name("events"), b.Name("dlx")
	for _, x := range []string{ex, dlx} {
		if err := ch.ExchangeDeclare(x, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	q := declareQueue(t, ch, b.Name("orders"), amqp.Table{"x-dead-letter-exchange": dlx})
	other := declareQueue(t, ch, b.Name("audit"), nil)
	dlq := declareQueue(t, ch, b.Name("dlq"), nil)
	for _, bind := range [][2]string{{q, ex}, {other, ex}, {dlq, dlx}} {
		if err := ch.QueueBind(bind[0], "#", bind[1], false, nil); err != nil {
			t.Fatal(err)
		}
	}

	// The consumer fails the event for good the first time, then handles it.
	var calls atomic.Int32
	handled := make(chan uuid.UUID, 4)
	runConsumer := func() (stop func()) {
		c, err := amqpconsumer.New(amqpconsumer.Config{
			URL: b.URL, Queue: q, Consumer: "orders", Store: dedup.NewPostgres(e.db.Pool),
			Handler: dedup.HandlerFunc(func(_ context.Context, _ pgx.Tx, env contracts.Envelope) error {
				if calls.Add(1) == 1 {
					return dedup.Permanent(errors.New("boom"))
				}
				handled <- env.EventID
				return nil
			}),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = c.Run(ctx) }()
		return func() { cancel(); <-done }
	}

	ev, err := contracts.New("sales.order.placed", "order-1", "sales-service", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	err = ch.PublishWithContext(testCtx(t), ex, ev.EventType, false, false, amqp.Publishing{
		MessageId: ev.EventID.String(), Type: ev.EventType, ContentType: contracts.ContentTypeJSON,
		Timestamp: ev.OccurredAt, AppId: ev.Source, DeliveryMode: amqp.Persistent, Body: body,
		Headers: amqp.Table{contracts.AMQPHeaderAggregateID: ev.AggregateID, "tenant": "acme"},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer()
	dead := getOne(t, ch, dlq)
	stop()
	if _, ok := dead.Headers["x-death"]; !ok {
		t.Fatalf("dead-lettered message without x-death: %v", dead.Headers)
	}
	ids := e.record(t, deadletter.DeadLetter{
		EventID: ev.EventID, Source: deadletter.SourceRabbitMQ, Origin: q, Reason: "rejected",
		EventType: ev.EventType, Headers: amqpheaders.Encode(&dead), Body: dead.Body,
	})
	if err := dead.Ack(false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueuePurge(other, false); err != nil {
		t.Fatal(err)
	}

	r := e.post(t, fmt.Sprintf("/api/v1/dead-letters/%d/replay", ids[0]), "")
	if r.status != http.StatusOK {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	var it listedItem
	r.decode(t, &it)
	if it.Status != "replayed" || it.ReplayCount != 1 || it.ReplayedAt == nil {
		t.Errorf("replayed item %+v", it)
	}

	got := getOne(t, ch, q)
	if got.MessageId != ev.EventID.String() || got.Type != ev.EventType || got.AppId != ev.Source ||
		string(got.Body) != string(body) || got.Exchange != "" || got.RoutingKey != q {
		t.Errorf("replayed message %+v", got)
	}
	if rid, ok := got.Headers["x-replay-id"].(string); !ok || uuid.Validate(rid) != nil {
		t.Errorf("x-replay-id %v", got.Headers["x-replay-id"])
	}
	if n, ok := got.Headers["x-replay-count"].(int32); !ok || n != 1 {
		t.Errorf("x-replay-count %#v, want int32 1", got.Headers["x-replay-count"])
	}
	for k := range got.Headers {
		if k == "x-death" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-") {
			t.Errorf("replayed message keeps %s", k)
		}
	}
	if got.Headers["tenant"] != "acme" || got.Headers[contracts.AMQPHeaderAggregateID] != "order-1" {
		t.Errorf("headers not kept: %v", got.Headers)
	}
	if err := got.Nack(false, true); err != nil { // back to the queue for the consumer
		t.Fatal(err)
	}
	if n := queueDepth(t, ch, other); n != 0 {
		t.Errorf("the other queue bound to the exchange got %d messages", n)
	}

	stop = runConsumer()
	defer stop()
	select {
	case id := <-handled:
		if id != ev.EventID {
			t.Errorf("handled %s, want %s", id, ev.EventID)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the consumer did not handle the replayed event")
	}

	// Replaying again is a conflict; the replay is recorded and counted.
	if r := e.post(t, fmt.Sprintf("/api/v1/dead-letters/%d/replay", ids[0]), ""); r.status != http.StatusConflict {
		t.Errorf("second replay: %d %s", r.status, r.body)
	}
	var action, principal string
	var n int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT action, principal, done_count FROM admin_actions
		WHERE error IS NULL`).Scan(&action, &principal, &n); err != nil {
		t.Fatal(err)
	}
	if action != adminapi.ActionReplayDeadLetter || principal != adminapi.AdminPrincipal || n != 1 {
		t.Errorf("admin_actions row %s %s %d", action, principal, n)
	}
	if v := counter(t, e, "messagekit_admin_replayed_messages_total", "kind", "dead_letter", "source", "rabbitmq"); v != 1 {
		t.Errorf("replayed messages counter %v", v)
	}
}

// counter returns the value of the counter name with the given labels.
func counter(t *testing.T, e *env, name string, labels ...string) float64 {
	t.Helper()
	families, err := e.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestReplayDeadLetterErrors pins the answers of POST
// /dead-letters/{id}/replay that publish nothing (or fail to): malformed and
// unknown ids, rows that are not pending, a missing or wrong token, and a
// queue that no longer exists (409, the row stays pending).
func TestReplayDeadLetterErrors(t *testing.T) {
	t.Parallel()
	b := testenv.RabbitMQ(t)
	e := newEnv(t, withQueues(t, b))
	ids := e.record(t, rabbitTo(b.Name("gone")), rabbitTo(b.Name("discarded")))
	if _, err := e.store.MarkDiscarded(testCtx(t), ids[1], "no"); err != nil {
		t.Fatal(err)
	}
	path := func(id any) string { return fmt.Sprintf("/api/v1/dead-letters/%v/replay", id) }
	tests := []struct {
		name, target, auth string
		want               int
		msg                string
	}{
		{"malformed id", path("abc"), "Bearer " + token, http.StatusBadRequest, "id"},
		{"zero id", path(0), "Bearer " + token, http.StatusBadRequest, "id"},
		{"unknown id", path(1 << 40), "Bearer " + token, http.StatusNotFound, "not found"},
		{"not pending", path(ids[1]), "Bearer " + token, http.StatusConflict, "discarded"},
		{"no token", path(ids[0]), "", http.StatusUnauthorized, "token"},
		{"wrong token", path(ids[0]), "Bearer nope", http.StatusUnauthorized, "token"},
		{"queue gone", path(ids[0]), "Bearer " + token, http.StatusConflict, "does not exist"},
	}
	for _, tc := range tests {
		r := do(t, e.api, http.MethodPost, tc.target, tc.auth, nil)
		if msg := r.errorMessage(t); r.status != tc.want || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, r.status, msg, tc.want, tc.msg)
		}
	}
	it, err := e.store.Get(testCtx(t), ids[0])
	if err != nil || it.Status != deadletter.StatusPending || it.ReplayCount != 0 {
		t.Errorf("after a failed replay: %s %d %v", it.Status, it.ReplayCount, err)
	}

	// Without a RabbitMQ publisher the API can not replay: 503.
	bare := newEnv(t)
	id := bare.record(t, rabbitTo("orders"))[0]
	if r := bare.post(t, path(id), ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("no publisher: %d %s", r.status, r.body)
	}
}
