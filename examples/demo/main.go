// Command demo runs messagekit locally: an embedded Kafka (kfake) on a local
// port, the schema applied to DATABASE_URL, and the three binaries as
// processes against the local PostgreSQL and RabbitMQ. It prints where each
// listens and its readiness, writes events with outbox.Writer, publishes
// them to Kafka with outbox.Relay, lets the bridge carry them to a RabbitMQ
// queue where a consumer rejects a few so that the dlq-bookkeeper stores
// them, then stops the binaries with SIGTERM after DEMO_DURATION (default: on
// Ctrl-C) and reports how each exited.
//
// Run it with `make demo`, which builds the binaries first.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
)

type process struct {
	name, bin, addr string
	cmd             *exec.Cmd
	done            chan struct{} // closed when the process has exited
	reported        bool          // stopAll has handled it
	err             error         // how it exited; read after done
}

func main() {
	binDir := flag.String("bin", "bin", "directory holding the built binaries")
	flag.Parse()
	if err := run(*binDir); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(binDir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	duration, err := durationEnv("DEMO_DURATION")
	if err != nil {
		return err
	}

	dbURL := envOr("DATABASE_URL", "postgres://localhost:5432/messagekit")
	amqpURL := envOr("AMQP_URL", "amqp://guest:guest@localhost:5672/")
	if err := ensureDatabase(ctx, dbURL); err != nil {
		return err
	}

	kafka, err := startKafka()
	if err != nil {
		return err
	}
	defer kafka.Close()
	brokers := strings.Join(kafka.ListenAddrs(), ",")

	logDir, err := os.MkdirTemp("", "messagekit-demo-")
	if err != nil {
		return err
	}
	adminToken := envOr("ADMIN_TOKEN", "demo")
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "AMQP_URL="+amqpURL, "KAFKA_BROKERS="+brokers,
		"ADMIN_TOKEN="+adminToken)

	fmt.Printf("messagekit demo\n  PostgreSQL  %s\n  RabbitMQ    %s\n  Kafka       %s (embedded kfake; topics events, events.dlq)\n  logs        %s\n\n",
		redact(dbURL), redact(amqpURL), brokers, logDir)

	migrateCmd := exec.CommandContext(ctx, filepath.Join(binDir, "admin-api"), "migrate")
	migrateCmd.Env = env
	if out, err := migrateCmd.CombinedOutput(); err != nil {
		return fmt.Errorf("migrate: %w\n%s", err, out)
	}
	fmt.Println("schema applied (admin-api migrate)")

	procs := []*process{
		{name: "bridge", bin: "bridge", addr: "127.0.0.1:9090"},
		{name: "dlq-bookkeeper", bin: "dlq-bookkeeper", addr: "127.0.0.1:9091"},
		{name: "admin-api", bin: "admin-api", addr: "127.0.0.1:8080"},
	}
	for _, p := range procs {
		if err := p.start(binDir, logDir, env); err != nil {
			stopAll(procs)
			return err
		}
	}
	defer stopAll(procs)

	fmt.Println("\nreadiness (GET /readyz):")
	for _, p := range procs {
		body, err := waitReady(ctx, p)
		if err != nil {
			return fmt.Errorf("%s: %w (log: %s)", p.name, err, filepath.Join(logDir, p.name+".log"))
		}
		fmt.Printf("  %-15s http://%s  %s\n", p.name, p.addr, body)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	runStart := time.Now()
	if err := prepareQueue(amqpURL); err != nil {
		return err
	}
	fmt.Println("\noutbox → Kafka (outbox.Writer, outbox.Relay):")
	events, err := writeAndRelay(ctx, pool, kafka.ListenAddrs(), 200)
	if err != nil {
		return err
	}
	fmt.Println("\nKafka → bridge → RabbitMQ → consumer → dead letters → dlq-bookkeeper:")
	if err := consumeAndReject(ctx, pool, amqpURL, events, 40); err != nil {
		return err
	}
	fmt.Println("\nadmin API → replay → the same queue:")
	if err := replayDeadLetters(ctx, procs[2].addr, adminToken, amqpURL, runStart, len(events)/40); err != nil {
		return err
	}
	fmt.Println("\nInspect: curl -H 'Authorization: Bearer " + adminToken + "' 'http://127.0.0.1:8080/api/v1/dead-letters?queue=" + demoQueue + "'")
	if duration > 0 {
		fmt.Printf("\nrunning for %s (DEMO_DURATION); Ctrl-C stops earlier\n", duration)
	} else {
		fmt.Println("\nrunning; Ctrl-C stops")
	}
	var timeUp <-chan time.Time // nil: wait for Ctrl-C
	if duration > 0 {
		timeUp = time.After(duration)
	}
	select {
	case <-ctx.Done():
	case <-timeUp:
	case err := <-firstExit(procs):
		return fmt.Errorf("a binary exited early: %w", err)
	}
	fmt.Println("\nstopping (SIGTERM):")
	return stopAll(procs)
}

func (p *process) start(binDir, logDir string, env []string) error {
	logFile, err := os.Create(filepath.Join(logDir, p.name+".log"))
	if err != nil {
		return err
	}
	p.cmd = exec.Command(filepath.Join(binDir, p.bin))
	p.cmd.Env = append(env, "HTTP_ADDR="+p.addr)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return nil
}

// stopAll sends SIGTERM to every running process and reports how each exited.
func stopAll(procs []*process) error {
	var errs []error
	for _, p := range procs {
		if p.done == nil || p.reported {
			continue
		}
		p.reported = true
		start := time.Now()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			fmt.Printf("  %-15s exited in %s: %s\n", p.name, time.Since(start).Round(time.Millisecond), exitText(p.err))
			if p.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.name, p.err))
			}
		case <-time.After(40 * time.Second):
			_ = p.cmd.Process.Kill()
			errs = append(errs, fmt.Errorf("%s did not stop within 40s and was killed", p.name))
		}
	}
	return errors.Join(errs...)
}

func firstExit(procs []*process) <-chan error {
	out := make(chan error, len(procs))
	for _, p := range procs {
		go func() {
			<-p.done
			out <- fmt.Errorf("%s: %s", p.name, exitText(p.err))
		}()
	}
	return out
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func waitReady(ctx context.Context, p *process) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			last = compact(b)
			if resp.StatusCode == http.StatusOK {
				return last, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("not ready: %s", last)
		case <-p.done:
			return "", fmt.Errorf("exited: %s", exitText(p.err))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func compact(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return strings.TrimSpace(string(b))
	}
	out, _ := json.Marshal(v)
	return string(out)
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

func durationEnv(k string) (time.Duration, error) {
	v := os.Getenv(k)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid %s %q: want a duration such as 30s", k, v)
	}
	return d, nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
