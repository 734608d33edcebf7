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

	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/amqpconsumer"
	"github.com/firstunicorn/messagekit-go/pkg/retention"
)

// shutdownTimeout bounds the graceful shutdown, within Kubernetes' default
// 30 s termination grace period.
const shutdownTimeout = 20 * time.Second

func main() {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fulfilment-service:", err)
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
		log.Error("fulfilment-service failed", "error", err)
		os.Exit(1)
	}
	log.Info("fulfilment-service stopped")
}

// run consumes CONSUMER_QUEUE, and serves /healthz, /readyz and /metrics
// on ln, until ctx ends. Then the consumer drains (it finishes and
// acknowledges the batch in flight; RabbitMQ takes back what was
// prefetched), the HTTP server stops and the pool closes.
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

	// The dedup store's rows are pruned by the service itself, one replica
	// at a time; it stops with ctx, before the pool closes.
	if cfg.PruneInterval > 0 && cfg.RetentionProcessed > 0 {
		pruner, err := retention.New(retention.Config{
			Tables:   []retention.Table{dedup.NewPostgres(pool).RetentionTable(cfg.RetentionProcessed, 0)},
			Interval: cfg.PruneInterval, DB: pool, LockName: cfg.ConsumerName + ".retention",
			Component: "consumer", Logger: log, Metrics: metrics,
		})
		if err != nil {
			return err
		}
		pruned := make(chan struct{})
		go func() { defer close(pruned); _ = pruner.Run(ctx) }()
		defer func() { <-pruned }()
	}

	// One typed handler per event type. Their types are also the routing
	// keys the queue is bound with: the bridge routes by event type.
	f := newFulfilment(metrics)
	var router dedup.Router
	dedup.On(&router, orderCreated, f.orderCreated)
	dedup.On(&router, orderLineAdded, f.lineAdded)
	var handler dedup.Handler = &router
	if cfg.RejectFraction > 0 {
		handler = newSimulatedFailures(&router, pool, cfg.RejectFraction, metrics)
	}

	consumer, err := amqpconsumer.New(amqpconsumer.Config{
		URL:            cfg.AMQPURL,
		Queue:          cfg.ConsumerQueue,
		Consumer:       cfg.ConsumerName,
		Store:          dedup.NewPostgres(pool), // processed_messages, next to fulfilment_log
		Handler:        handler,
		Declare:        true, // the queue with its DLX, and its bindings, at every (re)connection
		QueueType:      cfg.ConsumerQueueType,
		Exchange:       cfg.AMQPExchange,
		DLX:            cfg.AMQPDLX,
		Bindings:       router.Types(),
		ConnectionName: cfg.AMQPConnectionName,
		Logger:         log,
		Metrics:        metrics,
	})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /readyz", readyz(pool))
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	// Run reconnects by itself whenever RabbitMQ closes the connection, and
	// returns early only for what reconnecting cannot fix: refused
	// credentials, or a queue declared elsewhere with other arguments.
	consumerCtx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	consumed := make(chan error, 1)
	go func() { consumed <- consumer.Run(consumerCtx) }()
	log.Info("fulfilment-service started", "http_addr", ln.Addr().String(), "queue", cfg.ConsumerQueue,
		"exchange", cfg.AMQPExchange, "dlx", cfg.AMQPDLX, "reject_fraction", cfg.RejectFraction)

	var runErr error
	consumerRunning := true
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-consumed:
		consumerRunning = false
		if err != nil {
			runErr = err
		}
	}
	stopConsumer()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if consumerRunning {
		select {
		case err := <-consumed:
			runErr = errors.Join(runErr, err)
		case <-shutdownCtx.Done():
			runErr = errors.Join(runErr, errors.New("consumer did not drain in time"))
		}
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("http shutdown: %w", err))
	}
	return runErr
}
