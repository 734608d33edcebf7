package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// mainVariable makes the test binary run main instead of the tests, so that
// tests can check exit statuses and signal handling of the real process.
const mainVariable = "FULFILMENT_SERVICE_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainVariable) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// rig is one test's fulfilment service with its own database, exchange,
// dead-letter exchange and queue, plus a queue bound to the dead-letter
// exchange where the test reads dead letters, as the dlq-bookkeeper would.
type rig struct {
	cfg    Config
	db     *testenv.Database
	broker *testenv.Broker
	conn   *amqp.Connection // the test's own
	ch     *amqp.Channel    // on conn, in confirm mode
	dlq    string
	url    string
	stop   func() error
}

// newRig declares the topology the consumer declares (identically, so
// either may come first) and the test's dead-letter queue. The service is
// not started.
func newRig(t *testing.T, rejectFraction float64) *rig {
	t.Helper()
	b := testenv.RabbitMQ(t)
	r := &rig{
		db:     testenv.MigratedPostgres(t),
		broker: b,
		dlq:    b.Name("dead-letters"),
	}
	r.cfg = Config{
		AMQPURL:            b.URL,
		AMQPExchange:       b.Name("events"),
		AMQPDLX:            b.Name("events.dlx"),
		AMQPConnectionName: testenv.ConnectionName(t),
		ConsumerQueue:      b.Name("fulfilment.orders"),
		ConsumerName:       "fulfilment",
		RejectFraction:     rejectFraction,
		DatabaseURL:        r.db.URL,
		LogLevel:           slog.LevelDebug,
	}
	r.conn = b.Dial(t)
	var err error
	r.ch, err = r.conn.Channel()
	must(t, err)
	must(t, r.ch.Confirm(false))
	must(t, r.ch.ExchangeDeclare(r.cfg.AMQPExchange, amqp.ExchangeTopic, true, false, false, false, nil))
	must(t, r.ch.ExchangeDeclare(r.cfg.AMQPDLX, amqp.ExchangeTopic, true, false, false, false, nil))
	_, err = r.ch.QueueDeclare(r.cfg.ConsumerQueue, true, false, false, false, amqp.Table{"x-dead-letter-exchange": r.cfg.AMQPDLX})
	must(t, err)
	for _, key := range []string{orderCreated.Name(), orderLineAdded.Name()} {
		must(t, r.ch.QueueBind(r.cfg.ConsumerQueue, key, r.cfg.AMQPExchange, false, nil))
	}
	_, err = r.ch.QueueDeclare(r.dlq, false, false, false, false, nil)
	must(t, err)
	must(t, r.ch.QueueBind(r.dlq, "#", r.cfg.AMQPDLX, false, nil))
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// start runs the service until the test ends and waits until it consumes.
func (r *rig) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	r.url = "http://" + ln.Addr().String()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: r.cfg.LogLevel}))
	cfg := r.cfg
	r.stop = testenv.Run(t, func(ctx context.Context) error { return run(ctx, cfg, log, ln) })
	testenv.WaitFor(t, 30*time.Second, "the service to consume "+r.cfg.ConsumerQueue, func() bool {
		return r.consumers(t) == 1
	})
}

// consumers returns how many consumers the service's queue has.
func (r *rig) consumers(t *testing.T) int {
	t.Helper()
	ch, err := r.conn.Channel() // a channel of its own: a failed passive declare closes it
	must(t, err)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(r.cfg.ConsumerQueue, true, false, false, false, nil)
	must(t, err)
	return q.Consumers
}

// publish sends env as the bridge does: to the exchange, routing key =
// event type, message_id = event id.
func (r *rig) publish(t *testing.T, env contracts.Envelope) {
	t.Helper()
	body, err := env.MarshalJSON()
	must(t, err)
	r.send(t, r.cfg.AMQPExchange, env.EventType, amqp.Publishing{
		MessageId: env.EventID.String(), Type: env.EventType, ContentType: contracts.ContentTypeJSON,
		DeliveryMode: amqp.Persistent, Body: body,
	})
}

// replay sends a dead letter back to the service's queue as the admin API
// does: through the default exchange, with its message_id and body.
func (r *rig) replay(t *testing.T, d amqp.Delivery) {
	t.Helper()
	r.send(t, "", r.cfg.ConsumerQueue, amqp.Publishing{
		MessageId: d.MessageId, Type: d.Type, ContentType: d.ContentType, DeliveryMode: amqp.Persistent,
		Headers: amqp.Table{contracts.AMQPHeaderReplayID: uuid.NewString(), contracts.AMQPHeaderReplayCount: int32(1)},
		Body:    d.Body,
	})
}

func (r *rig) send(t *testing.T, exchange, key string, msg amqp.Publishing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := r.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	must(t, err)
	if ok, err := dc.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("publish %s to %q: not confirmed (%v)", msg.MessageId, exchange, err)
	}
}

// deadLetters returns the next n messages of the dead-letter queue, failing
// the test if they do not arrive within 30 s.
func (r *rig) deadLetters(t *testing.T, n int) []amqp.Delivery {
	t.Helper()
	var got []amqp.Delivery
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d dead letters", n), func() bool {
		for len(got) < n {
			d, ok, err := r.ch.Get(r.dlq, true)
			must(t, err)
			if !ok {
				return false
			}
			got = append(got, d)
		}
		return true
	})
	return got
}

// noMoreDeadLetters fails the test if the dead-letter queue is not empty.
func (r *rig) noMoreDeadLetters(t *testing.T) {
	t.Helper()
	if d, ok, err := r.ch.Get(r.dlq, true); err != nil || ok {
		t.Fatalf("unexpected dead letter %s (%v)", d.MessageId, err)
	}
}

// logged returns how many fulfilment_log rows each event has.
func (r *rig) logged(t *testing.T) map[uuid.UUID]int {
	t.Helper()
	rows, err := r.db.Pool.Query(context.Background(), "SELECT event_id, count(*) FROM fulfilment_log GROUP BY event_id")
	must(t, err)
	defer rows.Close()
	got := map[uuid.UUID]int{}
	for rows.Next() {
		var id uuid.UUID
		var n int
		must(t, rows.Scan(&id, &n))
		got[id] = n
	}
	must(t, rows.Err())
	return got
}

// metric returns the /metrics line that starts with name (and labels),
// or "".
func (r *rig) metric(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get(r.url + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

type fakeDB struct{ err error }

func (f fakeDB) Ping(context.Context) error { return f.err }

// /readyz says 503 and why when the database does not answer.
func TestReadyzReportsDatabaseDown(t *testing.T) {
	for _, tc := range []struct {
		err        error
		wantStatus int
		wantBody   string
	}{
		{nil, http.StatusOK, `"status":"ok"`},
		{errors.New("connection refused"), http.StatusServiceUnavailable, `"reason":"database: connection refused"`},
	} {
		rec := httptest.NewRecorder()
		readyz(fakeDB{tc.err}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != tc.wantStatus || !strings.Contains(rec.Body.String(), tc.wantBody) {
			t.Errorf("ping error %v: %d %s, want %d with %s", tc.err, rec.Code, rec.Body.String(), tc.wantStatus, tc.wantBody)
		}
	}
}

// The probes answer, and run returns nil after a graceful stop.
func TestProbesAndGracefulStop(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0)
	r.start(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(r.url + path)
		must(t, err)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatalf("run returned %v after a graceful stop, want nil", err)
	}
	if n := r.consumers(t); n != 0 {
		t.Fatalf("%d consumers left on the queue after the stop", n)
	}
}

// Without the messagekit migrations the service refuses to start, and says
// what to do.
func TestStartFailsWithoutDedupTable(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, Config{DatabaseURL: db.URL, ConsumerQueue: "q", ConsumerName: "c"}, slog.New(slog.DiscardHandler), ln)
	if err == nil || !strings.Contains(err.Error(), "processed_messages") || !strings.Contains(err.Error(), "migrations") {
		t.Fatalf("run = %v, want an error telling to apply the migrations for processed_messages", err)
	}
}

// The process exits with 2 and names the variable on invalid configuration.
func TestProcessInvalidConfigExits2(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"REJECT_FRACTION=1.5", "REJECT_FRACTION=-0.1", "REJECT_FRACTION=often", "LOG_LEVEL=loud"} {
		name, _, _ := strings.Cut(v, "=")
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), mainVariable+"=1", v)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), name) {
			t.Errorf("%s: exit %v, stderr %q; want status 2 naming %s", v, err, stderr.String(), name)
		}
	}
}

// SIGTERM drains the consumer and stops the process with status 0.
func TestProcessSIGTERMExits0(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), mainVariable+"=1", "HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=info",
		"DATABASE_URL="+r.cfg.DatabaseURL, "AMQP_URL="+r.cfg.AMQPURL,
		"AMQP_EXCHANGE="+r.cfg.AMQPExchange, "AMQP_DLX="+r.cfg.AMQPDLX,
		"AMQP_CONNECTION_NAME="+r.cfg.AMQPConnectionName, "CONSUMER_QUEUE="+r.cfg.ConsumerQueue,
		"CONSUMER_NAME="+r.cfg.ConsumerName, "REJECT_FRACTION=0")
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	testenv.WaitFor(t, 30*time.Second, "the process to consume", func() bool { return r.consumers(t) == 1 })
	env, err := orderCreated.New("o-1", "sales-service", OrderCreated{OrderID: "o-1"})
	must(t, err)
	r.publish(t, env)
	testenv.WaitFor(t, 30*time.Second, "the event to be logged", func() bool { return r.logged(t)[env.EventID] == 1 })

	must(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit within 30s of SIGTERM\n%s", stderr.String())
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`"msg":"fulfilment-service started"`),
		regexp.MustCompile(`"msg":"fulfilment-service stopped"`),
	} {
		if !want.MatchString(stderr.String()) {
			t.Errorf("log lacks %s:\n%s", want, stderr.String())
		}
	}
}
