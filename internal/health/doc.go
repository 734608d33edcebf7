// Package health serves the operations endpoints of a messagekit binary:
// GET /healthz (the process is alive), GET /readyz (every registered
// dependency answers) and GET /metrics (Prometheus, from a registry the
// caller passes in).
//
// /readyz runs the registered checks concurrently, each with its own
// timeout (DefaultTimeout unless configured), and answers 200 when all are
// up and 503 otherwise, with one JSON entry per check:
//
//	{"status":"ready","checks":{"postgres":{"status":"up","latency_ms":3}}}
//
// Requests that arrive while an evaluation is running share its result
// instead of starting another, and a check that ignores its deadline is not
// started again until it returns, so hammering /readyz cannot pile up
// goroutines. The handler also answers 503 while the process is starting or
// stopping (see SetState), so that a load balancer stops sending traffic
// before shutdown.
//
// Postgres, RabbitMQ and Kafka build ready-made checks for messagekit's
// dependencies.
package health
