package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/firstunicorn/messagekit-go/internal/stack"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// binDir holds the binaries TestMain built for this run.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips through testenv
	}
	dir, err := os.MkdirTemp("", "messagekit-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root, err := moduleRoot()
	if err == nil {
		err = stack.Build(context.Background(), root, dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build the binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

const adminToken = "e2e-token-0123456789"

// rig is one whole pipeline, with names, a database and a Kafka cluster
// of its own, and the independent clients the tests check it with.
type rig struct {
	t      *testing.T
	p      *stack.Pipeline
	db     *testenv.Database
	broker *testenv.Broker
	kafka  *testenv.KafkaCluster
	names  stack.Names
	kcl    *kgo.Client
	obs    *stack.Observer
	// own is set when the rig runs on servers of its own (rigOptions.own).
	own *ownServers
}

// ownServers are servers of the rig's own, which a test may kill, and the
// proxies between the bridge and two of them.
type ownServers struct {
	rabbit *testenv.RabbitNode
	pg     *testenv.PGCluster
	kafka  *testenv.RestartableKafka
	// bridgeAMQP and bridgePG carry the bridge's connections to RabbitMQ and
	// PostgreSQL, for network faults.
	bridgeAMQP, bridgePG *testenv.Proxy
}

type rigOptions struct {
	rejectFraction float64
	// databaseURL, when set, is what the processes connect to instead of
	// the test database's URL (e.g. through a proxy that can cut it).
	databaseURL func(db *testenv.Database) string
	env         map[string][]string
	// own runs the pipeline on a RabbitMQ node, a PostgreSQL cluster and a
	// restartable kfake of the test's own, the bridge reaching RabbitMQ and
	// PostgreSQL through proxies (rig.own).
	own bool
	// queueType is the type of the consumer queue and the dead-letter queue
	// ("" or "classic", "quorum").
	queueType string
}

func newRig(t *testing.T, opts rigOptions) *rig {
	t.Helper()
	names := stack.Prefixed(testenv.UniqueName(t, "e2e") + ".")
	kopts := testenv.KafkaOptions{Partitions: 8, Topics: []string{names.Topic, names.DLQTopic}}
	var (
		db      *testenv.Database
		broker  *testenv.Broker
		kafka   *testenv.KafkaCluster
		own     *ownServers
		amqpURL string
	)
	if opts.own {
		own = &ownServers{pg: testenv.OwnPostgres(t), rabbit: testenv.OwnRabbitMQ(t), kafka: testenv.KafkaRestartable(t, kopts)}
		pool, err := pgxpool.New(context.Background(), own.pg.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		db = &testenv.Database{Name: "test", URL: own.pg.URL, Pool: pool}
		amqpURL = own.rabbit.URL
		kafka = &testenv.KafkaCluster{Brokers: own.kafka.Brokers}
		own.bridgeAMQP = testenv.NewProxy(t, hostPort(t, own.rabbit.URL))
		own.bridgePG = testenv.NewProxy(t, hostPort(t, own.pg.URL))
		env := map[string][]string{}
		for k, v := range opts.env {
			env[k] = append([]string(nil), v...)
		}
		opts.env = env
		opts.env["bridge"] = append(opts.env["bridge"],
			"AMQP_URL="+strings.Replace(own.rabbit.URL, hostPort(t, own.rabbit.URL), own.bridgeAMQP.Addr(), 1),
			"DATABASE_URL="+strings.Replace(own.pg.URL, hostPort(t, own.pg.URL), own.bridgePG.Addr(), 1))
	} else {
		db = testenv.Postgres(t) // not migrated: the pipeline applies the schema itself
		broker = testenv.RabbitMQ(t)
		broker.Track(names.Exchange, names.DLX, names.ConsumerQueue, names.DLQQueue)
		kafka = testenv.KafkaWith(t, kopts)
		amqpURL = broker.URL
	}
	if opts.queueType != "" {
		env := map[string][]string{}
		for k, v := range opts.env {
			env[k] = append([]string(nil), v...)
		}
		env["consumer"] = append(env["consumer"], "CONSUMER_QUEUE_TYPE="+opts.queueType)
		env["dlq-bookkeeper"] = append(env["dlq-bookkeeper"], "DLQ_QUEUE_TYPE="+opts.queueType)
		opts.env = env
	}
	dbURL := db.URL
	if opts.databaseURL != nil {
		dbURL = opts.databaseURL(db)
	}
	p, err := stack.New(stack.Options{
		BinDir: binDir, LogDir: t.TempDir(),
		DatabaseURL: dbURL, AMQPURL: amqpURL, KafkaBrokers: strings.Join(kafka.Brokers, ","),
		Names: names, AdminToken: adminToken, RejectFraction: opts.rejectFraction,
		Env: opts.env,
	})
	if err != nil {
		t.Fatal(err)
	}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kcl.Close)
	r := &rig{t: t, p: p, db: db, broker: broker, kafka: kafka, names: names, kcl: kcl, own: own,
		obs: &stack.Observer{Pool: db.Pool, Kafka: kcl, Names: names}}
	t.Cleanup(func() {
		for _, res := range p.Stop(30 * time.Second) {
			if res.Err != nil {
				t.Errorf("%s at the end of the test: %v", res.Proc.Name, res.Err)
			}
		}
		if t.Failed() {
			for _, proc := range p.All() {
				t.Logf("--- %s log (last 30 lines):\n%s", proc.Name, proc.LogTail(30))
			}
		}
		for _, proc := range p.All() {
			t.Logf("%s peak RSS %d MiB", proc.Name, proc.PeakRSS()>>20)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

// hostPort returns the host:port of a URL.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// restart starts a process again and waits for it to be ready.
func (r *rig) restart(proc *stack.Proc) {
	r.t.Helper()
	if err := proc.Start(); err != nil {
		r.t.Fatal(err)
	}
	if _, err := proc.WaitReady(context.Background(), 30*time.Second); err != nil {
		r.t.Fatal(err)
	}
}

// summary waits up to limit for cond and returns the last summary.
func (r *rig) waitSummary(limit time.Duration, what string, cond func(stack.Summary) bool) stack.Summary {
	r.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s, err := r.obs.Summary(context.Background())
		if err != nil {
			r.t.Fatal(err)
		}
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			p, _ := r.obs.Progress(context.Background())
			r.t.Fatalf("%s: not after %s:\n%s\nprogress: %s", what, limit, s, p)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// admin calls the admin API with the token and decodes the JSON answer.
func (r *rig) admin(method, path, body string, out any) int {
	r.t.Helper()
	req, err := http.NewRequest(method, "http://"+r.p.Admin.Addr+path, bytes.NewBufferString(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && json.Unmarshal(b, out) != nil {
		r.t.Fatalf("%s %s: not JSON: %s", method, path, b)
	}
	return resp.StatusCode
}

// committed returns group's committed offsets of topic, summed over its
// partitions, and the sum of the partitions' end offsets.
func (r *rig) committed(group, topic string) (committed, end int64) {
	r.t.Helper()
	ctx := context.Background()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := range int32(8) {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, r.kcl)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Offset > 0 {
				committed += p.Offset
			}
		}
	}
	end, err = stack.EndOffsets(ctx, r.kcl, topic)
	if err != nil {
		r.t.Fatal(err)
	}
	return committed, end
}

// traceEnv turns on the per-event trace of the bridge (one line per
// publish round) and the consumer (one line per delivery).
var traceEnv = map[string][]string{"bridge": {"LOG_LEVEL=debug"}, "consumer": {"LOG_LEVEL=debug"}}

// traceEvents logs the consumer's trace lines of the given events and the
// bridge's publish rounds that carried their Kafka offsets.
func traceEvents(t *testing.T, r *rig, events ...string) {
	t.Helper()
	consumer, _ := os.ReadFile(r.p.Consumer.Log)
	bridge, _ := os.ReadFile(r.p.Bridge.Log)
	for _, ev := range events {
		var offsets []string
		for _, line := range strings.Split(string(consumer), "\n") {
			if !strings.Contains(line, ev) {
				continue
			}
			t.Logf("consumer: %s", line)
			var d struct {
				Partition json.Number `json:"kafka_partition"`
				Offset    json.Number `json:"kafka_offset"`
			}
			if json.Unmarshal([]byte(line), &d) == nil && d.Offset != "" {
				offsets = append(offsets, string(d.Partition)+"/"+string(d.Offset))
			}
		}
		for _, po := range offsets[:min(1, len(offsets))] {
			part, off, _ := strings.Cut(po, "/")
			for _, line := range strings.Split(string(bridge), "\n") {
				if strings.Contains(line, `"partition":`+part+",") &&
					(strings.Contains(line, "["+off+",") || strings.Contains(line, ","+off+",") ||
						strings.Contains(line, ","+off+"]") || strings.Contains(line, "["+off+"]") ||
						strings.Contains(line, `"offset":`+off+",")) {
					t.Logf("bridge: %s", line)
				}
			}
		}
	}
}
