package testenv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestOwnRabbitMQ: a persistent message in a durable queue of the test's
// own node survives kill -9 and a restart; stop_app closes the connection
// and start_app takes new ones.
func TestOwnRabbitMQ(t *testing.T) {
	n := OwnRabbitMQ(t)
	conn, err := amqp.Dial(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	d, err := ch.PublishWithDeferredConfirm("", "q", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("kept")})
	if err != nil || !d.Wait() {
		t.Fatalf("publish: %v", err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	n.Kill()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the connection outlived kill -9 of its node")
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err = amqp.Dial(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	ch, err = conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	msg, ok, err := ch.Get("q", true)
	if err != nil || !ok || string(msg.Body) != "kept" {
		t.Fatalf("after the restart: get = %q %v %v, want the persistent message", msg.Body, ok, err)
	}

	closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := n.StopApp(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("stop_app left the connection open")
	}
	if _, err := amqp.Dial(n.URL); err == nil {
		t.Fatal("a connection was accepted while the application was stopped")
	}
	if err := n.StartApp(); err != nil {
		t.Fatal(err)
	}
	conn, err = amqp.Dial(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
}

// TestOwnPostgres: a committed row survives an immediate shutdown (crash
// recovery at the restart); the open connection fails meanwhile.
func TestOwnPostgres(t *testing.T) {
	c := OwnPostgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a query succeeded while the server was down")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != "kept" {
		t.Fatalf("after the restart: %q %v", v, err)
	}
}

// TestKafkaRestartable: records and a group's committed offset survive a
// stop and a start from the data directory, on the same address.
func TestKafkaRestartable(t *testing.T) {
	k := KafkaRestartable(t, KafkaOptions{Partitions: 1, Topics: []string{"t"}})
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, v := range []string{"a", "b", "c"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A group member consumes two records and commits offset 2.
	member, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	var two []*kgo.Record
	for len(two) < 2 {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		fs := member.PollRecords(fctx, 2-len(two))
		cancel()
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		two = append(two, fs.Records()...)
	}
	if err := member.CommitRecords(ctx, two...); err != nil {
		t.Fatal(err)
	}
	member.Close()
	k.Stop()
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	var got int64 = -1
	WaitFor(t, 30*time.Second, "the committed offset read back", func() bool {
		fetch := kmsg.NewPtrOffsetFetchRequest()
		fetch.Group = "g"
		ft := kmsg.NewOffsetFetchRequestTopic()
		ft.Topic, ft.Partitions = "t", []int32{0}
		fetch.Topics = append(fetch.Topics, ft)
		resp, err := fetch.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) == 0 || len(resp.Topics[0].Partitions) == 0 {
			return false
		}
		got = resp.Topics[0].Partitions[0].Offset
		return true
	})
	if got != 2 {
		t.Fatalf("committed offset after the restart = %d, want 2", got)
	}
	recs := ReadRecords(t, k.Brokers, "t", 3, 30*time.Second)
	var values []string
	for _, r := range recs {
		values = append(values, string(r.Value))
	}
	if strings.Join(values, "") != "abc" {
		t.Fatalf("records after the restart = %v, want a b c", values)
	}
}

// TestProxy: a stall holds bytes until Resume, Drop resets the
// connections, refusing closes new ones, latency delays.
func TestProxy(t *testing.T) {
	c := OwnPostgres(t)
	backend := strings.TrimPrefix(strings.SplitN(c.URL, "/", 4)[2], "root@")
	p := NewProxy(t, backend)
	url := strings.Replace(c.URL, backend, p.Addr(), 1)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	p.Stall()
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err = conn.Exec(qctx, "SELECT 1")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("query through a stalled proxy: %v, want a timeout", err)
	}
	p.Resume()
	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Drop(); n < 1 {
		t.Fatalf("dropped %d connections, want at least 1", n)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a query succeeded on a dropped connection")
	}
	p.SetRefuse(true)
	if _, err := pgx.Connect(ctx, url); err == nil {
		t.Fatal("connected through a refusing proxy")
	}
	p.SetRefuse(false)
	p.SetLatency(300 * time.Millisecond)
	start := time.Now()
	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Fatalf("connecting took %s through 300ms of latency per chunk, want at least 600ms", took)
	}
}
