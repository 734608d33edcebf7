package testenv_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// Each test gets its own database, and it is gone after the test.
func TestPostgresIsolatedAndDropped(t *testing.T) {
	parent := testenv.Postgres(t)
	var names [2]string
	for i := range names {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			db := testenv.Postgres(t)
			names[i] = db.Name
			var current string
			if err := db.Pool.QueryRow(context.Background(), "SELECT current_database()").Scan(&current); err != nil {
				t.Fatal(err)
			}
			if current != db.Name {
				t.Fatalf("connected to %q, want %q", current, db.Name)
			}
			if _, err := db.Pool.Exec(context.Background(), "CREATE TABLE t (x int)"); err != nil {
				t.Fatal(err)
			}
		})
	}
	if names[0] == names[1] {
		t.Fatalf("two tests got the same database %q", names[0])
	}
	var left int
	if err := parent.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names[:]).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d test databases left behind", left)
	}
}

func TestMigratedPostgresHasSchema(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	var n int
	err := db.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM information_schema.tables WHERE table_name IN ('outbox_events','processed_messages','dead_letters')").Scan(&n)
	if err != nil || n != 3 {
		t.Fatalf("want the 3 messagekit tables, got %d (%v)", n, err)
	}
}

// Names from Broker.Name are unique, usable, and deleted after the test.
func TestRabbitMQNamesRoundTripAndCleanup(t *testing.T) {
	var queue string
	b0 := testenv.RabbitMQ(t)
	t.Run("use", func(t *testing.T) {
		b := testenv.RabbitMQ(t)
		queue = b.Name("orders")
		exchange := b.Name("events")
		if queue == b.Name("orders") {
			t.Fatal("Name returned the same name twice")
		}
		ch := b.Channel(t)
		if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(queue, "order.#", exchange, false, nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ch.PublishWithContext(ctx, exchange, "order.created", true, false,
			amqp.Publishing{MessageId: "m1", Body: []byte(`{"x":1}`)}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			msg, ok, err := ch.Get(queue, true)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				if msg.MessageId != "m1" || string(msg.Body) != `{"x":1}` {
					t.Fatalf("got %q %q", msg.MessageId, msg.Body)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("message never arrived")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	ch := b0.Channel(t)
	if _, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil); err == nil {
		t.Fatalf("queue %s still exists after its test", queue)
	}
}

// kfake speaks the Kafka protocol to both clients the project uses: franz-go
// and a sarama consumer group.
func TestKafkaSaramaAndFranzGo(t *testing.T) {
	brokers := testenv.Kafka(t, "events")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 20
	for i := range n {
		r := &kgo.Record{Topic: "events", Key: []byte(fmt.Sprint("agg-", i%4)), Value: []byte(fmt.Sprint(i)),
			Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(fmt.Sprint(i))}}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	group, err := sarama.NewConsumerGroup(brokers, testenv.UniqueName(t, "group"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	h := &collect{want: n, done: make(chan struct{}), seen: map[string]bool{}}
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{"events"}, h); err != nil {
				return
			}
		}
	}()
	select {
	case <-h.done:
	case <-ctx.Done():
		t.Fatalf("sarama consumer group saw %d of %d records", h.count(), n)
	}
}

// collect records the ids it sees; sarama runs ConsumeClaim once per
// partition, concurrently.
type collect struct {
	want int
	mu   sync.Mutex
	seen map[string]bool
	once sync.Once
	done chan struct{}
}

func (c *collect) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func (*collect) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*collect) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (c *collect) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		c.mu.Lock()
		if len(m.Headers) == 1 && string(m.Headers[0].Key) == "id" {
			c.seen[string(m.Headers[0].Value)] = true
		}
		all := len(c.seen) == c.want
		c.mu.Unlock()
		s.MarkMessage(m, "")
		if all {
			c.once.Do(func() { close(c.done) })
		}
	}
	return nil
}

// An unreachable server skips the test, or fails it when
// MESSAGEKIT_REQUIRE_INTEGRATION=1: CI must not go green by skipping.
func TestUnreachableSkipsOrFails(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		testenv.Postgres(t)
		t.Log("reached a server")
		return
	}
	for _, tc := range []struct {
		require string
		want    string
	}{{"", "--- SKIP"}, {"1", "--- FAIL"}} {
		t.Run("require="+tc.require, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestUnreachableSkipsOrFails$", "-test.v")
			cmd.Env = append(os.Environ(), "TESTENV_CHILD=1",
				testenv.DatabaseVariable+"=postgres://root@127.0.0.1:1/test",
				testenv.RequireVariable+"="+tc.require, "DOCKER_HOST=unix:///nonexistent.sock")
			out, _ := cmd.CombinedOutput()
			if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), testenv.DatabaseVariable) {
				t.Fatalf("want %q naming %s, got:\n%s", tc.want, testenv.DatabaseVariable, out)
			}
		})
	}
}

// CloseConnections closes this test's named connections and no target.
func TestCloseConnectionsByName(t *testing.T) {
	b := testenv.RabbitMQ(t)
	name := testenv.ConnectionName(t)
	dial := func(n string) *amqp.Connection {
		props := amqp.NewConnectionProperties()
		props.SetClientConnectionName(n)
		c, err := amqp.DialConfig(b.URL, amqp.Config{Properties: props})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	bystander, target := dial(name), dial(name+"x-target")
	closedCh := bystander.NotifyClose(make(chan *amqp.Error, 1))
	if n := b.CloseConnections(t, name+"x"); n != 1 {
		t.Fatalf("closed %d connections with prefix %sx, want 1", n, name)
	}
	if !target.IsClosed() {
		deadline := time.Now().Add(10 * time.Second)
		for !target.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !target.IsClosed() {
		t.Fatal("the named connection was not closed")
	}
	if bystander.IsClosed() {
		t.Fatal("a connection with another name was closed too")
	}
	select {
	case err := <-closedCh:
		t.Fatalf("the bystander connection was closed: %v", err)
	default:
	}
}
