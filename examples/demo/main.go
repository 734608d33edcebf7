// Command demo runs the whole messagekit pipeline locally, as processes:
// an embedded Kafka (kfake) on 127.0.0.1:9092, the schema applied to
// DATABASE_URL, the three binaries (bridge, dlq-bookkeeper, admin-api), the
// example producer (examples/producer, with the outbox Relay standing in for
// Debezium) and the example consumer (examples/consumer, which rejects a
// fraction of the events on first delivery so that they are dead-lettered).
//
// It prints where everything listens, drives the producer's HTTP API, shows
// a live progress line (written → in Kafka → bridged → consumed →
// dead-lettered), and on Ctrl-C or after DEMO_DURATION stops the load, waits
// for the pipeline to drain, replays the dead letters through the admin API
// (as the README's curl does; DEMO_REPLAY=false leaves them pending), and
// prints a summary that checks the guarantees: every written event consumed
// exactly once or pending as a dead letter, none lost.
//
// Run it with `make demo`, which builds the binaries first. Environment:
// DATABASE_URL, AMQP_URL, ADMIN_TOKEN (default "demo-token-0123456789", at least 16 bytes), DEMO_DURATION
// (default: until Ctrl-C), DEMO_RATE (producer requests per second, default
// 200), DEMO_REJECT_FRACTION (default 0.02), DEMO_REPLAY (default true).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/stack"
)

type settings struct {
	dbURL, amqpURL, token string
	duration              time.Duration
	rate, reject          float64
	replay                bool
}

func main() {
	binDir := flag.String("bin", "bin", "directory holding the built binaries and examples")
	flag.Parse()
	s, err := readSettings()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	if err := run(*binDir, s); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func readSettings() (settings, error) {
	s := settings{
		dbURL:   envOr("DATABASE_URL", "postgres://localhost:5432/messagekit"),
		amqpURL: envOr("AMQP_URL", "amqp://guest:guest@localhost:5672/"),
		token:   envOr("ADMIN_TOKEN", "demo-token-0123456789"),
	}
	var err error
	if s.duration, err = parseEnv("DEMO_DURATION", "0s", time.ParseDuration, func(d time.Duration) bool { return d >= 0 }); err != nil {
		return s, err
	}
	float := func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }
	if s.rate, err = parseEnv("DEMO_RATE", "200", float, func(f float64) bool { return f > 0 }); err != nil {
		return s, err
	}
	if s.reject, err = parseEnv("DEMO_REJECT_FRACTION", "0.02", float, func(f float64) bool { return f >= 0 && f <= 1 }); err != nil {
		return s, err
	}
	s.replay, err = parseEnv("DEMO_REPLAY", "true", strconv.ParseBool, func(bool) bool { return true })
	return s, err
}

func run(binDir string, s settings) error {
	// The first Ctrl-C ends the run (drain, replay, summary); a second one
	// ends the wait for the drain.
	interrupted, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx := context.Background()

	if err := ensureDatabase(ctx, s.dbURL); err != nil {
		return err
	}
	kafka, err := startKafka()
	if err != nil {
		return err
	}
	defer kafka.Close()
	brokers := kafka.ListenAddrs()

	logDir, err := os.MkdirTemp("", "messagekit-demo-")
	if err != nil {
		return err
	}
	bin, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	p, err := stack.New(stack.Options{
		BinDir: bin, LogDir: logDir,
		DatabaseURL: s.dbURL, AMQPURL: s.amqpURL, KafkaBrokers: strings.Join(brokers, ","),
		AdminToken: s.token, RejectFraction: s.reject,
		Addrs: map[string]string{
			"admin-api": "127.0.0.1:8080", "bridge": "127.0.0.1:9090", "dlq-bookkeeper": "127.0.0.1:9091",
			"producer": "127.0.0.1:8081", "consumer": "127.0.0.1:8082",
		},
	})
	if err != nil {
		return err
	}
	fmt.Printf("messagekit demo\n  PostgreSQL   %s\n  RabbitMQ     %s\n  Kafka        %s (embedded kfake; topics events, events.dlq)\n  logs         %s\n\n",
		redact(s.dbURL), redact(s.amqpURL), strings.Join(brokers, ","), logDir)
	if err := p.Migrate(ctx); err != nil {
		return err
	}
	fmt.Println("schema applied (admin-api migrate)")
	defer p.Stop(30 * time.Second) // on an early return; a no-op after the summary's stop
	if err := p.Start(ctx); err != nil {
		return err
	}
	fmt.Println("\nrunning (GET /readyz of each):")
	for _, proc := range p.All() {
		_, body := proc.Ready(ctx)
		fmt.Printf("  %-15s http://%-16s %s\n", proc.Name, proc.Addr, body)
	}
	fmt.Printf("\nThe producer takes orders:  curl -X POST -d '{\"customer\":\"ada\"}' http://%s/orders\n", p.Producer.Addr)
	fmt.Printf("Dead letters:               curl -H 'Authorization: Bearer %s' 'http://%s/api/v1/dead-letters?status=pending'\n", s.token, p.Admin.Addr)
	fmt.Printf("Replay them all:            curl -X POST -H 'Authorization: Bearer %s' -d '{\"status\":\"pending\",\"limit\":10000}' http://%s/api/v1/dead-letters/replay\n",
		s.token, p.Admin.Addr)

	pool, err := pgxpool.New(ctx, s.dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer kcl.Close()
	obs := &stack.Observer{Pool: pool, Kafka: kcl, Names: stack.DefaultNames()}
	// Count this run only: the database keeps earlier runs' rows.
	if err := pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&obs.Since); err != nil {
		return err
	}

	load := &stack.Load{Addr: p.Producer.Addr, Rate: s.rate}
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadErr := make(chan error, 1)
	go func() { loadErr <- load.Run(loadCtx, -1, 4) }()

	if s.duration > 0 {
		fmt.Printf("\nwriting about %.0f events/s for %s (DEMO_DURATION); Ctrl-C ends earlier\n\n", s.rate, s.duration)
	} else {
		fmt.Printf("\nwriting about %.0f events/s; Ctrl-C ends the run and prints the summary\n\n", s.rate)
	}
	progress := newProgressLine(obs)
	var timeUp <-chan time.Time
	if s.duration > 0 {
		timeUp = time.After(s.duration)
	}
	var runErr error
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-interrupted.Done():
			break wait
		case <-timeUp:
			break wait
		case err := <-loadErr:
			runErr = fmt.Errorf("producer load: %w", err)
			break wait
		case err := <-p.FirstExit():
			runErr = err
			break wait
		case <-tick.C:
			progress.show(ctx)
		}
	}
	stopLoad()
	progress.end(ctx)
	if runErr != nil {
		return runErr
	}
	stop() // a second Ctrl-C now ends the process at once

	fmt.Println("\nload stopped; waiting for the pipeline to drain")
	if err := drain(ctx, obs, progress); err != nil {
		return err
	}
	if s.replay {
		sum, err := obs.Summary(ctx)
		if err != nil {
			return err
		}
		if sum.DeadLettered > 0 {
			fmt.Printf("\nreplaying the %d pending dead letters through the admin API (the curl above)\n", sum.DeadLettered)
			n, err := replayAll(ctx, p.Admin.Addr, s.token)
			if err != nil {
				return err
			}
			fmt.Printf("  replayed_count %d\n", n)
			if err := drainReplays(ctx, obs, progress); err != nil {
				return err
			}
		}
	}
	sum, err := obs.Summary(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("\nsummary\n%s\n", sum)
	fmt.Println("\nstopping (SIGTERM):")
	var errs []error
	for _, r := range p.Stop(30 * time.Second) {
		status := "exit 0"
		if r.Err != nil {
			status = r.Err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", r.Proc.Name, r.Err))
		}
		fmt.Printf("  %-15s %-8s in %6s  peak RSS %3d MiB\n", r.Proc.Name, status, r.Took.Round(time.Millisecond), r.Proc.PeakRSS()>>20)
	}
	if !sum.OK() {
		errs = append(errs, errors.New("the guarantees did not hold: see the summary"))
	} else {
		fmt.Println("\nevery written event was consumed exactly once or is a pending dead letter; none lost")
	}
	return errors.Join(errs...)
}

// drain waits until every written event is consumed or dead-lettered.
func drain(ctx context.Context, obs *stack.Observer, progress *progressLine) error {
	return waitSummary(ctx, obs, progress, "drain", func(s stack.Summary) bool { return s.Missing == 0 })
}

// drainReplays waits until the replayed dead letters are consumed.
func drainReplays(ctx context.Context, obs *stack.Observer, progress *progressLine) error {
	return waitSummary(ctx, obs, progress, "replay", func(s stack.Summary) bool { return s.Missing == 0 && s.DeadLettered == 0 })
}

func waitSummary(ctx context.Context, obs *stack.Observer, progress *progressLine, what string, done func(stack.Summary) bool) error {
	interrupted, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	limit := time.After(2 * time.Minute)
	for {
		sum, err := obs.Summary(ctx)
		if err != nil {
			return err
		}
		progress.show(ctx)
		if done(sum) {
			progress.end(ctx)
			return nil
		}
		select {
		case <-interrupted.Done():
			progress.end(ctx)
			fmt.Printf("\n%s interrupted\n", what)
			return nil
		case <-limit:
			progress.end(ctx)
			return fmt.Errorf("%s: not done after 2m: %+v", what, sum)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// startKafka listens on 127.0.0.1:9092 (the binaries' default) when that port
// is free, else on any free port.
func startKafka() (*kfake.Cluster, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(8),
		kfake.SeedTopics(8, "events", "events.dlq")}
	if l, err := net.Listen("tcp", "127.0.0.1:9092"); err == nil {
		_ = l.Close()
		opts = append(opts, kfake.Ports(9092))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded Kafka: %w", err)
	}
	return c, nil
}

// ensureDatabase creates the database named in dbURL if it does not exist.
func ensureDatabase(ctx context.Context, dbURL string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL at %s: %w", redact(admin.String()), err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func parseEnv[T any](k, def string, parse func(string) (T, error), ok func(T) bool) (T, error) {
	raw := envOr(k, def)
	v, err := parse(raw)
	if err != nil || !ok(v) {
		var zero T
		return zero, fmt.Errorf("invalid %s %q", k, raw)
	}
	return v, nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
