package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/stack"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// A Python messagekit producer's database, created with its seed DDL and
// written the way its outbox repository writes, served by the bridge, the
// bookkeeper and the admin API as processes: its flat event is bridged with
// the body unchanged, dead-lettered by a consumer, flagged in the varchar
// outbox, listed by /dlq, retried, and replayed by time range.
func TestPythonProducerDatabase(t *testing.T) {
	db := testenv.PythonSeedPostgres(t, false) // the pipeline migrates it
	fixture, err := os.ReadFile("../../pkg/contracts/testdata/python/user_created.flat-dumps.json")
	if err != nil {
		t.Fatal(err)
	}
	eventID := uuid.New()
	testenv.InsertPythonEvent(t, db, bytes.Replace(fixture, []byte("0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a"), []byte(eventID.String()), 1))
	var payload []byte // as Debezium reads it: the json column's text
	if err := db.Pool.QueryRow(context.Background(), `SELECT payload::text FROM outbox_events WHERE event_id = $1`,
		eventID.String()).Scan(&payload); err != nil {
		t.Fatal(err)
	}

	broker := testenv.RabbitMQ(t)
	names := stack.Prefixed(testenv.UniqueName(t, "py") + ".")
	queue := names.ConsumerQueue
	broker.Track(names.Exchange, names.DLX, queue, names.DLQQueue)
	kafka := testenv.KafkaWith(t, testenv.KafkaOptions{Partitions: 1, Topics: []string{names.Topic, names.DLQTopic}})
	p, err := stack.New(stack.Options{
		BinDir: binDir, LogDir: t.TempDir(),
		DatabaseURL: db.URL, AMQPURL: broker.URL, KafkaBrokers: strings.Join(kafka.Brokers, ","),
		Names: names, AdminToken: adminToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	procs := []*stack.Proc{p.Admin, p.Bookkeeper, p.Bridge} // no Go producer or consumer
	t.Cleanup(func() {
		for _, proc := range procs {
			if _, err := proc.Stop(30 * time.Second); err != nil {
				t.Errorf("%s: %v", proc.Name, err)
			}
			if t.Failed() {
				t.Logf("--- %s log:\n%s", proc.Name, proc.LogTail(30))
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := p.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, proc := range procs {
		if err := proc.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := proc.WaitReady(ctx, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kcl.Close)
	r := &rig{t: t, p: p, db: db}

	// A consumer's queue, as a Python or Go consumer declares it.
	ch := broker.Channel(t)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-dead-letter-exchange": names.DLX}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "identity.#", names.Exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	next := func(what string) amqp.Delivery {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			d, ok, err := ch.Get(queue, false)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: nothing in %s after 60s", what, queue)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Debezium's outbox router publishes the row: key aggregateId, value
	// the payload, header id.
	if err := kcl.ProduceSync(ctx, &kgo.Record{Topic: names.Topic, Key: []byte("user-42"), Value: payload,
		Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(eventID.String())}, {Key: "eventType", Value: []byte("identity.user.created")}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	d := next("the bridged event")
	if !bytes.Equal(d.Body, payload) || d.MessageId != eventID.String() || d.Type != "identity.user.created" ||
		d.AppId != "identity-service" || d.Headers[contracts.AMQPHeaderAggregateID] != "user-42" {
		t.Fatalf("bridged: body %q, properties %+v", d.Body, d)
	}
	env, err := contracts.Decode(d.Body)
	if err != nil || !strings.Contains(string(env.Data), `"userId":42`) {
		t.Fatalf("the consumer's decode: %s %v", env.Data, err)
	}

	// The consumer refuses it: RabbitMQ dead-letters it, the bookkeeper
	// records it and flags the varchar outbox row.
	if err := d.Nack(false, false); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 60*time.Second, "the outbox row flagged", func() bool {
		var failed bool
		var attempts int
		err := db.Pool.QueryRow(context.Background(), `SELECT failed, attempt_count FROM outbox_events WHERE event_id = $1`,
			eventID.String()).Scan(&failed, &attempts)
		return err == nil && failed && attempts == 1
	})
	var dlq struct {
		Events []struct {
			ID           string  `json:"id"`
			EventType    string  `json:"event_type"`
			ErrorMessage *string `json:"error_message"`
		} `json:"events"`
	}
	if code := r.admin("GET", "/api/v1/dlq", "", &dlq); code != 200 || len(dlq.Events) != 1 ||
		dlq.Events[0].ID != eventID.String() || dlq.Events[0].EventType != "identity.user.created" ||
		dlq.Events[0].ErrorMessage == nil || !strings.Contains(*dlq.Events[0].ErrorMessage, queue) {
		t.Fatalf("GET /dlq: %d %+v", code, dlq)
	}

	// Retry: the dead letter goes back to the queue, the row is no longer failed.
	var retried map[string]any
	if code := r.admin("POST", "/api/v1/dlq/"+eventID.String()+"/retry", "", &retried); code != 200 || retried["retried"] != true {
		t.Fatalf("POST /dlq/{id}/retry: %d %v", code, retried)
	}
	d = next("the retried event")
	if !bytes.Equal(d.Body, payload) || d.MessageId != eventID.String() || d.Headers[contracts.AMQPHeaderReplayID] == nil {
		t.Fatalf("retried: %q %+v", d.Body, d.Headers)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	var failed bool
	if err := db.Pool.QueryRow(ctx, `SELECT failed FROM outbox_events WHERE event_id = $1`, eventID.String()).Scan(&failed); err != nil || failed {
		t.Fatalf("after retry: failed %v %v", failed, err)
	}

	// Replay by time range: the row goes back to Kafka and through the bridge.
	q := url.Values{"from_ts": {time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
		"to_ts": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}}
	var replay struct {
		ReplayedCount int    `json:"replayed_count"`
		ReplayID      string `json:"replay_id"`
	}
	if code := r.admin("POST", "/api/v1/replay?"+q.Encode(), "", &replay); code != 200 || replay.ReplayedCount != 1 {
		t.Fatalf("POST /replay: %d %+v", code, replay)
	}
	d = next("the replayed event")
	if !bytes.Equal(d.Body, payload) || d.MessageId != eventID.String() || d.Headers[contracts.AMQPHeaderReplayID] != replay.ReplayID {
		t.Fatalf("replayed: %q %+v", d.Body, d.Headers)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}

	// /health/outbox counts the varchar table's pending row (the Python
	// side never marks it published: Debezium does not).
	var health struct {
		Status string                    `json:"status"`
		Checks map[string]map[string]any `json:"checks"`
	}
	code, body, err := p.Admin.Get(ctx, "/health/outbox")
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &health) != nil || health.Status == "" {
		t.Fatalf("GET /health/outbox: %d %s %v", code, body, err)
	}
	pending, ok := health.Checks["outbox"]["pending_count"] // the seed's name
	if !ok {
		pending = health.Checks["outbox"]["pending"]
	}
	if pending != float64(1) {
		t.Errorf("GET /health/outbox: pending %v, want 1: %s", pending, body)
	}
}
