package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/firstunicorn/messagekit-go/internal/migrate"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// Defaults of the service locations, the same as the tests' (DESIGN.md §10).
const (
	defaultDatabaseURL = "postgres://root@127.0.0.1:5432/test"
	defaultAMQPURL     = "amqp://guest:guest@127.0.0.1:5672/"
)

// routingKey is every record's eventType, the bridge's default routing key.
const routingKey = "load.item.recorded"

// env is what one tool run sets up and tears down: kfake, a scratch
// database, an exchange, a DLX and a queue bound "#" to the exchange.
type env struct {
	kafka    *kfake.Cluster
	brokers  []string
	server   string // the PostgreSQL server's URL (its default database)
	dbName   string
	dbURL    string
	amqpURL  string
	exchange string
	dlx      string
	queue    string
	suffix   string
	admin    sarama.ClusterAdmin
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// setup starts kfake with no topics (each mode seeds its own) and creates
// the database and the RabbitMQ topology. On error, whatever was created is
// removed again.
func setup(ctx context.Context, o *options) (e *env, err error) {
	e = &env{server: o.dbURL, amqpURL: o.amqpURL, suffix: randomHex(4)}
	defer func() {
		if err != nil {
			e.close()
			e = nil
		}
	}()
	e.kafka, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(o.partitions),
		// Records as large as the bridge's default BRIDGE_MAX_RECORD_BYTES
		// (16 MiB), for the memory measurements of -size 8388608.
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(32 << 20)}))
	if err != nil {
		return e, fmt.Errorf("start kfake: %w", err)
	}
	e.brokers = e.kafka.ListenAddrs()
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_8_0_0
	e.admin, err = sarama.NewClusterAdmin(e.brokers, sc)
	if err != nil {
		return e, fmt.Errorf("kafka admin: %w", err)
	}

	e.dbName = "mk_load_" + e.suffix
	if err := adminExec(ctx, e.server, "CREATE DATABASE "+pgx.Identifier{e.dbName}.Sanitize()); err != nil {
		e.dbName = ""
		return e, fmt.Errorf("create database (TEST_DATABASE_URL=%s): %w", redact(e.server), err)
	}
	u, err := url.Parse(e.server)
	if err != nil {
		return e, fmt.Errorf("TEST_DATABASE_URL: %w", err)
	}
	u.Path = "/" + e.dbName
	e.dbURL = u.String()
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := migrate.Up(mctx, e.dbURL, nil); err != nil {
		return e, err
	}

	e.exchange = "load-x." + e.suffix
	e.dlx = "load-dlx." + e.suffix
	e.queue = "load-q." + e.suffix
	conn, err := amqp.Dial(e.amqpURL)
	if err != nil {
		return e, fmt.Errorf("dial RabbitMQ (TEST_AMQP_URL=%s): %w", redact(e.amqpURL), err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		return e, err
	}
	// The bridge declares the same exchanges with the same arguments.
	for _, x := range []string{e.exchange, e.dlx} {
		if err := ch.ExchangeDeclare(x, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return e, fmt.Errorf("declare exchange %s: %w", x, err)
		}
	}
	if _, err := ch.QueueDeclare(e.queue, true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		return e, fmt.Errorf("declare queue %s: %w", e.queue, err)
	}
	if err := ch.QueueBind(e.queue, "#", e.exchange, false, nil); err != nil {
		return e, fmt.Errorf("bind queue %s: %w", e.queue, err)
	}
	return e, nil
}

// close removes the queue, the exchanges and the database and stops kfake;
// failures are reported on stderr.
func (e *env) close() {
	if e.queue != "" {
		if conn, err := amqp.Dial(e.amqpURL); err == nil {
			for _, del := range []func(*amqp.Channel) error{
				func(ch *amqp.Channel) error { _, err := ch.QueueDelete(e.queue, false, false, false); return err },
				func(ch *amqp.Channel) error { return ch.ExchangeDelete(e.exchange, false, false) },
				func(ch *amqp.Channel) error { return ch.ExchangeDelete(e.dlx, false, false) },
			} {
				if ch, err := conn.Channel(); err == nil {
					if err := del(ch); err != nil {
						fmt.Fprintln(os.Stderr, "load: RabbitMQ clean-up:", err)
					}
					_ = ch.Close()
				}
			}
			_ = conn.Close()
		} else {
			fmt.Fprintln(os.Stderr, "load: RabbitMQ clean-up skipped:", err)
		}
	}
	if e.dbName != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := adminExec(ctx, e.server, "DROP DATABASE IF EXISTS "+pgx.Identifier{e.dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "load: drop database:", err)
		}
		cancel()
	}
	if e.admin != nil {
		_ = e.admin.Close()
	}
	if e.kafka != nil {
		e.kafka.Close()
	}
}

func adminExec(ctx context.Context, serverURL, sql string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, sql)
	return errors.Join(err, conn.Close(ctx))
}

// redact drops the password of a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// topic is one seeded Kafka topic and how many records each partition holds.
type topic struct {
	name   string
	counts []int64 // records per partition
	total  int
}

// newTopic creates a topic and its DLQ topic with o.partitions partitions.
func (e *env) newTopic(base string, partitions int) (*topic, error) {
	name := base + "." + randomHex(4)
	for _, t := range []string{name, name + contracts.DLQTopicSuffix} {
		err := e.admin.CreateTopic(t, &sarama.TopicDetail{NumPartitions: int32(partitions), ReplicationFactor: 1}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return nil, fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return &topic{name: name, counts: make([]int64, partitions)}, nil
}

// committedToEnd reports whether group committed the end offset of every
// partition of t.
func (e *env) committedToEnd(group string, t *topic) (bool, error) {
	parts := make([]int32, len(t.counts))
	for p := range parts {
		parts[p] = int32(p)
	}
	resp, err := e.admin.ListConsumerGroupOffsets(group, map[string][]int32{t.name: parts})
	if err != nil {
		return false, err
	}
	for p, n := range t.counts {
		blk := resp.GetBlock(t.name, int32(p))
		if blk == nil || blk.Offset < n {
			return false, nil
		}
	}
	return true, nil
}

// deleteTopic deletes t and its DLQ topic, freeing kfake's copy.
func (e *env) deleteTopic(t *topic) error {
	for _, name := range []string{t.name, t.name + contracts.DLQTopicSuffix} {
		if err := e.admin.DeleteTopic(name); err != nil {
			return fmt.Errorf("delete topic %s: %w", name, err)
		}
	}
	return nil
}
