package secure

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/firstunicorn/messagekit-go/internal/stack"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "messagekit-secure-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../../cmd/bridge", "../../cmd/dlq-bookkeeper", "../../cmd/admin-api")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "secure: build the binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Kafka users and their passwords; the superuser writes the test's records.
const (
	superuser      = "admin"
	superPassword  = "admin-pw-0a1b2c"
	bridgeUser     = "bridge"
	bridgePassword = "bridge-pw-3d4e5f"
	keeperUser     = "bookkeeper"
	keeperPassword = "keeper-pw-6a7b8c"
	apiUser        = "admin-api"
	apiPassword    = "api-pw-9d0e1f"
	// adminToken is the admin API's Bearer token (at least 16 bytes).
	adminToken = "secure-test-token-0123456789"
)

// env is everything a secured deployment shares.
type env struct {
	pki      *testenv.PKI
	kafka    []string
	names    names
	amqpURL  string // amqps:// through the proxy
	proxy    *testenv.TLSProxy
	client   testenv.Pair // the services' client certificate (RabbitMQ)
	pg       *testenv.PostgresTLS
	dbURL    string
	broker   *testenv.Broker
	superKgo *kgo.Client
}

type names struct {
	topic, dlqTopic, bridgeGroup, keeperGroup string
	// unreadable is a topic no service user has an ACL for.
	unreadable                       string
	exchange, dlx, dlqQueue, capture string
	// consumerQueue is the queue a RabbitMQ dead letter came from and is
	// replayed to.
	consumerQueue string
}

func allow(resource kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
	return kfake.ACL{Resource: resource, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pki := testenv.NewPKI(t, "messagekit test CA")
	n := names{
		topic: testenv.UniqueName(t, "sec.events"), bridgeGroup: testenv.UniqueName(t, "sec.bridge"),
		keeperGroup: testenv.UniqueName(t, "sec.keeper"),
	}
	n.dlqTopic, n.unreadable = n.topic+".dlq", n.topic+".unreadable"
	broker := testenv.RabbitMQ(t)
	n.exchange, n.dlx, n.dlqQueue, n.capture = broker.Name("sec.events"), broker.Name("sec.events.dlx"), broker.Name("sec.events.dlq"), broker.Name("sec.capture")
	n.consumerQueue = broker.Name("sec.orders")
	broker.Track(n.exchange, n.dlx, n.dlqQueue, n.capture, n.consumerQueue)

	server := pki.Server("kafka", "127.0.0.1", "localhost")
	cluster := testenv.KafkaWith(t, testenv.KafkaOptions{Topics: []string{n.topic, n.dlqTopic, n.unreadable}, Fake: []kfake.Opt{
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{server.Cert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", superuser, superPassword),
		// Each binary may do only what it needs.
		kfake.User("SCRAM-SHA-512", bridgeUser, bridgePassword,
			allow(kmsg.ACLResourceTypeTopic, n.topic, kmsg.ACLOperationRead),
			allow(kmsg.ACLResourceTypeTopic, n.dlqTopic, kmsg.ACLOperationWrite),
			allow(kmsg.ACLResourceTypeGroup, n.bridgeGroup, kmsg.ACLOperationRead)),
		kfake.User("SCRAM-SHA-512", keeperUser, keeperPassword,
			allow(kmsg.ACLResourceTypeTopic, n.dlqTopic, kmsg.ACLOperationRead),
			allow(kmsg.ACLResourceTypeGroup, n.keeperGroup, kmsg.ACLOperationRead)),
		kfake.User("SCRAM-SHA-512", apiUser, apiPassword,
			allow(kmsg.ACLResourceTypeTopic, n.topic, kmsg.ACLOperationWrite)),
	}})

	client := pki.Client("messagekit")
	upstream := strings.TrimPrefix(broker.URL, "amqp://")
	creds, hostPath, _ := strings.Cut(upstream, "@")
	host, vhost, _ := strings.Cut(hostPath, "/")
	proxy := testenv.StartTLSProxy(t, host, &tls.Config{
		Certificates: []tls.Certificate{pki.Server("rabbitmq", "127.0.0.1", "localhost").Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: pki.Pool(), MinVersion: tls.VersionTLS12,
	})
	amqpURL := "amqps://" + creds + "@" + proxy.Addr + "/" + vhost

	pg := testenv.StartPostgresTLS(t, pki)
	e := &env{pki: pki, kafka: cluster.Brokers, names: n, amqpURL: amqpURL, proxy: proxy, client: client,
		pg: pg, dbURL: pg.URL(pki.CAFile), broker: broker}

	tc := &tls.Config{RootCAs: pki.Pool(), MinVersion: tls.VersionTLS12}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(cluster.Brokers...), kgo.DialTLSConfig(tc),
		kgo.SASL(scram.Auth{User: superuser, Pass: superPassword}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kcl.Close)
	e.superKgo = kcl
	return e
}

// common is the environment of every binary: the secured connections.
func (e *env) common(user, password string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"), "LOG_LEVEL=info", "HTTP_ADDR=127.0.0.1:0",
		"DATABASE_URL=" + e.dbURL,
		"KAFKA_BROKERS=" + strings.Join(e.kafka, ","), "KAFKA_TLS_CA_FILE=" + e.pki.CAFile,
		"KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "KAFKA_SASL_USERNAME=" + user, "KAFKA_SASL_PASSWORD=" + password,
		"AMQP_URL=" + e.amqpURL, "AMQP_TLS_CA_FILE=" + e.pki.CAFile,
		"AMQP_TLS_CERT_FILE=" + e.client.CertFile, "AMQP_TLS_KEY_FILE=" + e.client.KeyFile,
		"AMQP_DLX=" + e.names.dlx,
	}
}

func (e *env) bridgeEnv() []string {
	return append(e.common(bridgeUser, bridgePassword),
		"KAFKA_TOPICS="+e.names.topic, "KAFKA_GROUP_ID="+e.names.bridgeGroup, "KAFKA_DLQ_TOPIC="+e.names.dlqTopic,
		"AMQP_EXCHANGE="+e.names.exchange, "AMQP_CONNECTION_NAME="+e.names.exchange+" bridge")
}

func (e *env) keeperEnv() []string {
	return append(e.common(keeperUser, keeperPassword),
		"KAFKA_GROUP_ID="+e.names.keeperGroup, "DLQ_KAFKA_TOPICS="+e.names.dlqTopic,
		"DLQ_QUEUES="+e.names.dlqQueue, "DLQ_BINDINGS=#", "AMQP_CONNECTION_NAME="+e.names.exchange+" bookkeeper")
}

func (e *env) apiEnv() []string {
	return append(e.common(apiUser, apiPassword),
		"OUTBOX_TOPIC="+e.names.topic, "AMQP_EXCHANGE="+e.names.exchange, "ADMIN_TOKEN="+adminToken)
}

// proc starts binary with env, its log in the test's directory, stopped
// (and its log shown on failure) when the test ends.
func proc(t *testing.T, binary string, env []string, args ...string) *stack.Proc {
	t.Helper()
	port := freePort(t)
	for i, kv := range env {
		if strings.HasPrefix(kv, "HTTP_ADDR=") {
			env[i] = "HTTP_ADDR=" + port
		}
	}
	p := &stack.Proc{Name: binary, Path: filepath.Join(binDir, binary), Args: args, Env: env, Addr: port,
		Log: filepath.Join(t.TempDir(), binary+".log")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.Running() {
			if _, err := p.Stop(30 * time.Second); err != nil {
				t.Errorf("%s: stop: %v", binary, err)
			}
		}
		if t.Failed() {
			t.Logf("--- %s log:\n%s", binary, p.LogTail(40))
		}
	})
	return p
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// migrate applies the schema to the TLS-only database with a binary, as
// an operator's migration job does.
func (e *env) migrate(t *testing.T) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "admin-api"), "migrate")
	cmd.Env = e.apiEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("admin-api migrate: %v\n%s", err, out)
	}
}

func envelope(id uuid.UUID, eventType string) []byte {
	b, _ := json.Marshal(map[string]any{"eventId": id, "eventType": eventType, "aggregateId": "order-1",
		"occurredAt": time.Now().UTC().Format(time.RFC3339Nano), "source": "orders", "dataVersion": "1.0",
		"data": map[string]any{"n": 1}})
	return b
}

// TestSecuredPipeline pins issue 14's end-to-end matrix: the bridge reads
// Kafka with TLS + SCRAM-SHA-512 under ACLs that allow only its topic, its
// DLQ topic and its group, dedups in PostgreSQL over verify-full TLS and
// publishes over amqps:// with a client certificate; a poison record goes
// to the DLQ topic, where the bookkeeper (its own user and ACLs) stores
// it; a RabbitMQ dead letter reaches the bookkeeper over amqps:// too; and
// every binary's /readyz is 200 with all three dependencies secured.
func TestSecuredPipeline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.pg.Ping(ctx, e.dbURL); err != nil {
		t.Fatalf("verify-full connection to the test's PostgreSQL: %v", err)
	}
	e.migrate(t)

	// What the bridge publishes is captured by a queue of the test's own.
	ch := e.broker.Channel(t)
	if err := ch.ExchangeDeclare(e.names.exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(e.names.capture, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(e.names.capture, "#", e.names.exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	// The queue the RabbitMQ dead letter came from, where its replay goes.
	if _, err := ch.QueueDeclare(e.names.consumerQueue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	bridge := proc(t, "bridge", e.bridgeEnv())
	keeper := proc(t, "dlq-bookkeeper", e.keeperEnv())
	api := proc(t, "admin-api", e.apiEnv())
	for _, p := range []*stack.Proc{bridge, keeper, api} {
		body, err := p.WaitReady(ctx, 90*time.Second)
		if err != nil {
			t.Fatalf("%s not ready: %v\n%s\n%s", p.Name, err, body, p.LogTail(20))
		}
	}

	const n = 20
	ids := make([]uuid.UUID, n)
	var recs []*kgo.Record
	for i := range ids {
		ids[i] = uuid.New()
		recs = append(recs, &kgo.Record{Topic: e.names.topic, Key: []byte("order-1"), Value: envelope(ids[i], "orders.order.created"),
			Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(ids[i].String())}}})
	}
	recs = append(recs, &kgo.Record{Topic: e.names.topic, Key: []byte("poison"), Value: []byte("not json")})
	if err := e.superKgo.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Every valid event is published, in order, over amqps://.
	deliveries, err := ch.Consume(e.names.capture, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(60 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case d := <-deliveries:
			if d.MessageId != ids[i].String() {
				t.Fatalf("message %d is %s, want %s", i, d.MessageId, ids[i])
			}
		case <-timeout:
			t.Fatalf("%d of %d events bridged within 60s", i, n)
		}
	}

	// A RabbitMQ dead letter, as a consumer's queue would dead-letter it.
	if err := ch.PublishWithContext(ctx, e.names.dlx, "orders.order.created", false, false, amqp.Publishing{
		MessageId: uuid.NewString(), Body: envelope(uuid.New(), "orders.order.created"),
		Headers: amqp.Table{"x-death": []any{amqp.Table{"count": int64(1), "reason": "rejected", "queue": e.names.consumerQueue,
			"time": time.Now().Truncate(time.Second), "exchange": e.names.exchange, "routing-keys": []any{"orders.order.created"}}}},
	}); err != nil {
		t.Fatal(err)
	}

	// Both dead letters are stored, over verify-full TLS.
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	testenv.WaitFor(t, 60*time.Second, "the Kafka and the RabbitMQ dead letter in dead_letters", func() bool {
		var kafka, rabbit int
		err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE source = 'kafka' AND reason = 'DECODE'),
			count(*) FILTER (WHERE source = 'rabbitmq') FROM dead_letters`).Scan(&kafka, &rabbit)
		return err == nil && kafka == 1 && rabbit == 1
	})
	var processed int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM processed_messages`).Scan(&processed); err != nil || processed < n {
		t.Fatalf("processed_messages = %d (%v), want at least %d", processed, err, n)
	}
	if got := e.proxy.Verified.Load(); got < 3 {
		t.Errorf("%d AMQP connections presented a verified client certificate, want one per binary at least", got)
	}
	for _, p := range []*stack.Proc{bridge, keeper, api} {
		code, body := p.Ready(ctx)
		if code != http.StatusOK {
			t.Errorf("%s /readyz = %d: %s", p.Name, code, body)
		}
	}

	// Both dead letters are replayed through the admin API, which reaches
	// RabbitMQ over amqps:// and Kafka with TLS + SCRAM under an ACL that
	// allows writing the topic only.
	var kafkaID, rabbitID int64
	if err := conn.QueryRow(ctx, `SELECT max(id) FILTER (WHERE source = 'kafka'), max(id) FILTER (WHERE source = 'rabbitmq')
		FROM dead_letters`).Scan(&kafkaID, &rabbitID); err != nil {
		t.Fatal(err)
	}
	rabbitReplay := replayDeadLetter(t, api, rabbitID)
	kafkaReplay := replayDeadLetter(t, api, kafkaID)
	if rabbitReplay.ReplayCount != 1 || kafkaReplay.ReplayCount != 1 || rabbitReplay.Status != "replayed" || kafkaReplay.Status != "replayed" {
		t.Fatalf("replayed items: %+v, %+v; want status replayed, replay_count 1", rabbitReplay, kafkaReplay)
	}

	// The RabbitMQ one arrives in its queue with x-replay-id.
	testenv.WaitFor(t, 30*time.Second, "the replayed RabbitMQ dead letter in "+e.names.consumerQueue, func() bool {
		d, ok, err := ch.Get(e.names.consumerQueue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return false
		}
		if _, has := d.Headers["x-replay-id"]; !has {
			t.Fatalf("replayed message without x-replay-id: %v", d.Headers)
		}
		return true
	})

	// The Kafka one arrives in its topic with header replayId, read with
	// the secured client.
	reader, err := kgo.NewClient(kgo.SeedBrokers(e.kafka...),
		kgo.DialTLSConfig(&tls.Config{RootCAs: e.pki.Pool(), MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: superuser, Pass: superPassword}.AsSha512Mechanism()),
		kgo.ConsumeTopics(e.names.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	found := false
	deadline, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !found && deadline.Err() == nil {
		fs := reader.PollFetches(deadline)
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "replayId" && string(r.Value) == "not json" {
					if _, err := uuid.Parse(string(h.Value)); err != nil {
						t.Errorf("replayId %q is not a UUID", h.Value)
					}
					found = true
				}
			}
		})
	}
	if !found {
		t.Fatalf("no record with header replayId in %s within 30s", e.names.topic)
	}
}

type replayedItem struct {
	Status      string `json:"status"`
	ReplayCount int    `json:"replay_count"`
}

// replayDeadLetter replays dead letter id through api's
// POST /api/v1/dead-letters/{id}/replay with the Bearer token.
func replayDeadLetter(t *testing.T, api *stack.Proc, id int64) replayedItem {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/api/v1/dead-letters/%d/replay", api.Addr, id), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var item replayedItem
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &item) != nil {
		t.Fatalf("replay dead letter %d: %d %s", id, resp.StatusCode, body)
	}
	return item
}
