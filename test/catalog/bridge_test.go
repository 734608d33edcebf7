package catalog

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/stack"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog/catalogtest"
)

var bridgeBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "messagekit-catalog-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bridgeBin = filepath.Join(dir, "bridge")
	cmd := exec.Command("go", "build", "-o", bridgeBin, "../../cmd/bridge")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the bridge: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

const shop = "../../pkg/contracts/catalog/testdata/shop"

// rig is a bridge process with a topic, an exchange and a queue bound to
// it, and a database of its own.
type rig struct {
	t        *testing.T
	topic    string
	brokers  []string
	producer *kgo.Client
	proc     *stack.Proc

	mu  sync.Mutex
	got []amqp.Delivery
}

func newRig(t *testing.T, catalogEnv ...string) *rig {
	t.Helper()
	db := testenv.MigratedPostgres(t)
	rmq := testenv.RabbitMQ(t)
	topic := testenv.UniqueName(t, "events")
	k := testenv.KafkaWith(t, testenv.KafkaOptions{Partitions: 1, Topics: []string{topic, topic + contracts.DLQTopicSuffix}})
	exchange, queue := rmq.Name("catalog-x"), rmq.Name("catalog-q")
	ch := rmq.Channel(t)
	check(t, ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil))
	_, err := ch.QueueDeclare(queue, false, false, false, false, nil)
	check(t, err)
	check(t, ch.QueueBind(queue, "#", exchange, false, nil))
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	check(t, err)
	r := &rig{t: t, topic: topic, brokers: k.Brokers}
	go func() {
		for d := range deliveries {
			r.mu.Lock()
			r.got = append(r.got, d)
			r.mu.Unlock()
		}
	}()
	r.producer, err = kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.DefaultProduceTopic(topic))
	check(t, err)
	t.Cleanup(r.producer.Close)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(t, err)
	addr := l.Addr().String()
	l.Close()
	env := append(os.Environ(),
		"DATABASE_URL="+db.URL, "AMQP_URL="+rmq.URL, "AMQP_EXCHANGE="+exchange,
		"KAFKA_BROKERS="+strings.Join(k.Brokers, ","), "KAFKA_TOPICS="+topic,
		"KAFKA_GROUP_ID="+testenv.UniqueName(t, "bridge"), "HTTP_ADDR="+addr,
		"AMQP_CONNECTION_NAME="+testenv.UniqueName(t, "catalog-bridge"), "LOG_LEVEL=info")
	env = append(env, catalogEnv...)
	r.proc = &stack.Proc{Name: "bridge", Path: bridgeBin, Env: env, Addr: addr, Log: filepath.Join(t.TempDir(), "bridge.log")}
	check(t, r.proc.Start())
	t.Cleanup(func() {
		if _, err := r.proc.Stop(30 * time.Second); err != nil {
			t.Errorf("bridge: %v", err)
		}
		if t.Failed() {
			t.Logf("bridge log:\n%s", r.proc.LogTail(40))
		}
	})
	if _, err := r.proc.WaitReady(context.Background(), 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return r
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// produce writes an event of eventType from source with data; it returns
// the event id.
func (r *rig) produce(eventType, source, data string) string {
	r.t.Helper()
	e, err := contracts.New(eventType, "agg-1", source, json.RawMessage(data))
	check(r.t, err)
	value, err := json.Marshal(e)
	check(r.t, err)
	rec := &kgo.Record{Key: []byte(e.AggregateID), Value: value, Headers: []kgo.RecordHeader{{Key: contracts.KafkaHeaderID, Value: []byte(e.EventID.String())}}}
	check(r.t, r.producer.ProduceSync(context.Background(), rec).FirstErr())
	return e.EventID.String()
}

func (r *rig) delivered(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.got {
		if d.MessageId == id {
			return true
		}
	}
	return false
}

func (r *rig) metric(name string, labels ...string) float64 {
	r.t.Helper()
	v, err := r.proc.Metric(context.Background(), name, labels...)
	check(r.t, err)
	return v
}

func header(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

const (
	validOrder = `{"orderId":"o-1","customerId":"c-1","total":{"amount":"10.00","currency":"EUR"},"items":[{"sku":"a","quantity":1}]}`
	badOrder   = `{"orderId":"o-1","customerId":"c-1","total":{"amount":"10.00","currency":"EUR"},"items":[{"sku":"a","quantity":"two"}]}`
)

// Strict mode with a catalog directory: a listed event with valid data is
// bridged; an unlisted type and data breaking the schema go to the DLQ
// topic with stage VALIDATE and a reason that names the type or the field.
func TestBridgeStrictDirectory(t *testing.T) {
	t.Parallel()
	r := newRig(t, "EVENT_CATALOG_PATH="+shop, "EVENT_CATALOG_STRICT_MODE=true")
	unlisted := r.produce("orders.order.deleted", "order-service", `{}`)
	bad := r.produce("orders.order.created", "order-service", badOrder)
	good := r.produce("orders.order.created", "order-service", validOrder)
	testenv.WaitFor(t, 30*time.Second, "the listed event bridged", func() bool { return r.delivered(good) })

	dlq := testenv.ReadRecords(t, r.brokers, r.topic+contracts.DLQTopicSuffix, 2, 30*time.Second)
	want := []struct{ id, in string }{{unlisted, `"orders.order.deleted" is not in the event catalog`}, {bad, "data.items.0.quantity"}}
	for i, rec := range dlq {
		if got := header(rec, contracts.DLQHeaderStage); got != "VALIDATE" {
			t.Errorf("dead letter %d: stage %q", i, got)
		}
		if got := header(rec, contracts.KafkaHeaderID); got != want[i].id {
			t.Errorf("dead letter %d is %s, want %s", i, got, want[i].id)
		}
		if msg := header(rec, contracts.DLQHeaderExceptionMessage); !strings.Contains(msg, want[i].in) {
			t.Errorf("dead letter %d: exception message %q does not contain %q", i, msg, want[i].in)
		}
	}
	if r.delivered(unlisted) || r.delivered(bad) {
		t.Error("a refused event was bridged")
	}
	if n := r.metric("messagekit_bridge_catalog_violations_total", "kind", "unknown_type"); n != 1 {
		t.Errorf("violations{unknown_type} = %v", n)
	}
	if n := r.metric("messagekit_bridge_catalog_violations_total", "kind", "schema"); n != 1 {
		t.Errorf("violations{schema} = %v", n)
	}
}

// Non-strict mode with the catalog on a branch of a bare git repository:
// violations are bridged and counted; a commit pushed to the branch is
// picked up after the refresh interval, without a restart.
func TestBridgeGitRefresh(t *testing.T) {
	t.Parallel()
	bare := t.TempDir()
	repo := catalogtest.NewBareRepo(t, bare, "main")
	files := catalogtest.Files(t, shop)
	repo.Commit(t, files, "catalog")
	r := newRig(t, "EVENT_CATALOG_REPO_URL="+bare, "EVENT_CATALOG_REFRESH_INTERVAL=1")

	unlisted := r.produce("shipping.parcel.sent", "order-service", `{"parcel":1}`)
	testenv.WaitFor(t, 30*time.Second, "the unlisted event bridged", func() bool { return r.delivered(unlisted) })
	if n := r.metric("messagekit_bridge_catalog_violations_total", "kind", "unknown_type"); n != 1 {
		t.Fatalf("violations{unknown_type} = %v, want 1", n)
	}

	files["events.toml"] += "\n[events.\"shipping.parcel.sent\"]\nowner_service = \"order-service\"\nschemas = { \"1.0\" = \"schemas/parcel.json\" }\n"
	files["schemas/parcel.json"] = `{"type":"object","properties":{"parcel":{"type":"string"}},"required":["parcel"]}`
	repo.Commit(t, files, "add shipping.parcel.sent")
	testenv.WaitFor(t, 30*time.Second, "the commit picked up", func() bool {
		return r.metric("messagekit_catalog_refreshes_total", "result", "ok") >= 2 &&
			strings.Contains(r.proc.LogTail(50), "event catalog changed")
	})
	now := r.produce("shipping.parcel.sent", "order-service", `{"parcel":1}`)
	testenv.WaitFor(t, 30*time.Second, "the violating event bridged", func() bool { return r.delivered(now) })
	if n := r.metric("messagekit_bridge_catalog_violations_total", "kind", "schema"); n != 1 {
		t.Errorf("violations{schema} = %v, want 1 (the new schema in force)", n)
	}
	if n := r.metric("messagekit_bridge_catalog_violations_total", "kind", "unknown_type"); n != 1 {
		t.Errorf("violations{unknown_type} = %v, want still 1", n)
	}
}
