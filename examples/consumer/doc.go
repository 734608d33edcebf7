// Command consumer is an example "fulfilment" service that consumes events
// from RabbitMQ effectively once, with messagekit's dedup consumer. Copy it
// as the shape of your own consumer: it shows how to use pkg/contracts
// (typed events, declared by the consumer itself), pkg/dedup (a Router of
// typed handlers, the PostgreSQL dedup store, permanent errors) and
// pkg/dedup/amqpconsumer (queue, bindings, dead-letter exchange,
// reconnection, graceful drain).
//
// The bridge (cmd/bridge) publishes each event to AMQP_EXCHANGE with the
// event type as routing key. This service binds CONSUMER_QUEUE to it for
// sales.order.created and sales.order.line-added and writes one
// fulfilment_log row per event (line_no 0 for an order, the line's number
// for a line), in the same transaction that records the event id in
// processed_messages under CONSUMER_NAME. A redelivered event is
// acknowledged without a second row. A message that can never be handled
// (not an envelope, a type without a handler, an empty orderId) is rejected
// and RabbitMQ dead-letters it to AMQP_DLX; database errors are retried.
// When RabbitMQ closes the connection, the consumer reconnects, declares
// its queue again and carries on.
//
// # Simulated failures
//
// REJECT_FRACTION (0 to 1, default 0) makes that fraction of events fail
// on their first delivery, to show dead letters and replay end to end: an
// event is unlucky when the first 8 bytes of the SHA-256 of its event id's
// 16 bytes, as a big-endian uint64 divided by 2^64, are below
// REJECT_FRACTION. An unlucky event is dead-lettered at once (and its id
// recorded in fulfilment_rejections) until it comes back replayed from the
// dead-letter store (admin API), with the x-replay-count header, which the
// handler reads from amqpconsumer.DeliveryFrom: then it is handled
// normally. See failures.go.
//
// # HTTP
//
//	GET /healthz   200 while the process runs
//	GET /readyz    200 when PostgreSQL answers within 2 s, else 503 {"reason"}
//	GET /metrics   Prometheus: messagekit_consumer_* (handled, duplicates,
//	               dead_lettered, retries, lag, reconnects),
//	               fulfilment_events_handled_total{event_type},
//	               fulfilment_events_rejected_total
//
// # Configuration
//
//	DATABASE_URL          postgres://localhost:5432/messagekit
//	AMQP_URL              amqp://guest:guest@localhost:5672/
//	AMQP_EXCHANGE         events
//	AMQP_DLX              events.dlx
//	AMQP_CONNECTION_NAME  fulfilment
//	CONSUMER_QUEUE        fulfilment.orders
//	CONSUMER_NAME         fulfilment
//	CONSUMER_QUEUE_TYPE   classic (or quorum: at-least-once dead-lettering)
//	REJECT_FRACTION       0
//	HTTP_ADDR             :8082
//	RETENTION_PROCESSED_MESSAGES 168h (0 keeps processed_messages rows forever)
//	PRUNE_INTERVAL        5m (0: no pruning; one replica prunes at a time)
//	LOG_LEVEL             info (debug, info, warn, error)
//
// An invalid value stops start-up with exit status 2 and a message naming
// the variable; a failure at run time exits with 1; SIGINT or SIGTERM
// drains and exits with 0. Logs are JSON on stderr.
//
// # Running it
//
// The service creates its tables (fulfilment_log, fulfilment_rejections) if
// missing; processed_messages comes from messagekit's migrations, which
// must be applied first:
//
//	make build && DATABASE_URL=postgres://localhost:5432/messagekit bin/admin-api migrate
//	DATABASE_URL=postgres://localhost:5432/messagekit REJECT_FRACTION=0.1 go run ./examples/consumer
//
// Run examples/producer, cmd/bridge and cmd/dlq-bookkeeper next to it for
// the whole pipeline.
package main
