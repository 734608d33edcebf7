package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/firstunicorn/messagekit-go/pkg/outbox"
	"github.com/firstunicorn/messagekit-go/pkg/retention"
)

// shutdownTimeout bounds the graceful shutdown, within Kubernetes' default
// 30 s termination grace period.
const shutdownTimeout = 20 * time.Second

func main() {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sales-service:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err == nil {
		err = run(ctx, cfg, log, ln)
	}
	stop()
	if err != nil {
		log.Error("sales-service failed", "error", err)
		os.Exit(1)
	}
	log.Info("sales-service stopped")
}

// run serves the sales API on ln, and runs the outbox Relay when enabled,
// until ctx ends. Then it shuts down gracefully: it stops accepting
// requests and lets those in flight finish, then stops the Relay (which
// kept publishing what they wrote), then closes the database pool.
func run(ctx context.Context, cfg Config, log *slog.Logger, ln net.Listener) error {
	defer ln.Close() // when returning before Serve; Shutdown closes it otherwise

	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer pool.Close()
	if err := prepareDatabase(ctx, pool); err != nil {
		return err
	}

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The outbox is pruned by the service itself, one replica at a time;
	// it stops with ctx, before the pool closes.
	if cfg.PruneInterval > 0 && cfg.RetentionOutbox > 0 {
		pruner, err := retention.New(retention.Config{
			Tables:   []retention.Table{outbox.RetentionTable(pool, cfg.RetentionOutbox, outbox.PruneOptions{CDC: !cfg.RelayEnabled})},
			Interval: cfg.PruneInterval, DB: pool, LockName: "sales.retention",
			Component: "sales", Logger: log, Metrics: metrics,
		})
		if err != nil {
			return err
		}
		pruned := make(chan struct{})
		go func() { defer close(pruned); _ = pruner.Run(ctx) }()
		defer func() { <-pruned }()
	}

	var relay *outbox.Relay
	if cfg.RelayEnabled {
		var pub *kafkaPublisher
		relay, pub, err = newRelay(cfg, pool, log, metrics)
		if err != nil {
			return err
		}
		defer pub.Close() // runs after the Relay has stopped, before pool.Close
	}

	orders := newOrders(pool, log, metrics)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", orders.create)
	mux.HandleFunc("POST /orders/{id}/lines", orders.addLine)
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /readyz", readyz(pool))
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	srv := &http.Server{
		Handler:           withTraceContext(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	// The Relay gets a context of its own, cancelled only once the HTTP
	// server has drained, so that it can publish what the last requests wrote.
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	relayDone := make(chan error, 1)
	if relay != nil {
		go func() { relayDone <- relay.Run(relayCtx) }() // returns only when stopped
	}
	log.Info("sales-service started", "http_addr", ln.Addr().String(),
		"relay", cfg.RelayEnabled, "outbox_topic", cfg.OutboxTopic)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("http shutdown: %w", err))
	}
	if relay != nil {
		stopRelay()
		select {
		case err := <-relayDone:
			runErr = errors.Join(runErr, err)
		case <-shutdownCtx.Done():
			runErr = errors.Join(runErr, errors.New("outbox relay did not stop in time"))
		}
	}
	return runErr
}
