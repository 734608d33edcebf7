// Command producer is an example "sales" service that publishes events with
// messagekit's transactional outbox. Copy it as the shape of your own
// producer: it shows how to use pkg/contracts (typed events), pkg/outbox
// (Writer in the business transaction, Relay to Kafka) and how to run and
// stop such a service.
//
// Every write is one PostgreSQL transaction that changes the service's own
// tables and adds the event to outbox_events with outbox.Writer.Add, so an
// event exists exactly when its change committed. Getting the events to
// Kafka is a separate, at-least-once step: the in-process outbox.Relay
// (RELAY_ENABLED=true, the default), or Debezium's outbox router
// (deployments/debezium/, RELAY_ENABLED=false). Kafka being down never
// fails a request: events wait in the outbox.
//
// # HTTP API
//
//	POST /orders              {"customer":"ada","id":"optional"}
//	                          → 201 {"id":"…","eventId":"…"}; 409 when the id exists.
//	                          Adds sales.order.created {"orderId","customer"}.
//	POST /orders/{id}/lines   {"sku":"A-1","qty":2}
//	                          → 201 {"orderId":"…","lineNo":1,"eventId":"…"}; 404 unknown order.
//	                          Adds sales.order.line-added {"orderId","lineNo","sku","qty"}.
//	GET  /healthz             200 while the process runs
//	GET  /readyz              200 when PostgreSQL answers within 2 s, else 503 {"reason"}
//	GET  /metrics             Prometheus: sales_orders_created_total,
//	                          sales_order_lines_added_total, the Relay's messagekit_outbox_*
//
// Invalid requests get 400 (413 over 64 KiB) and {"error":"…"} naming the
// field, and write nothing: bad JSON, unknown fields, an empty customer or
// sku, qty outside 1..1000000, an id outside [A-Za-z0-9._:-]{1,128}. The
// events' aggregateId is the order id, so each order's events keep their
// order in Kafka. A W3C traceparent header on a request is stored with its
// event and travels on as a Kafka header.
//
// # Configuration
//
//	DATABASE_URL   postgres://localhost:5432/messagekit
//	HTTP_ADDR      :8081
//	KAFKA_BROKERS  localhost:9092 (comma-separated)
//	OUTBOX_TOPIC   events
//	RELAY_ENABLED  true (false when Debezium publishes the outbox)
//	RETENTION_OUTBOX 720h (published rows, or every row without the Relay; 0 keeps them)
//	PRUNE_INTERVAL 5m (0: no pruning; one replica prunes at a time)
//	LOG_LEVEL      info (debug, info, warn, error)
//
// An invalid value stops start-up with exit status 2 and a message naming
// the variable; a failure at run time exits with 1; SIGINT or SIGTERM shuts
// down gracefully with 0. Logs are JSON on stderr.
//
// # Running it
//
// The service creates its tables (orders, order_lines) if missing, but
// outbox_events comes from messagekit's migrations, which must be applied
// first:
//
//	make build && DATABASE_URL=postgres://localhost:5432/messagekit bin/admin-api migrate
//	DATABASE_URL=postgres://localhost:5432/messagekit KAFKA_BROKERS=localhost:9092 go run ./examples/producer
//	curl -s -XPOST localhost:8081/orders -d '{"customer":"ada"}'
//	curl -s -XPOST localhost:8081/orders/<id>/lines -d '{"sku":"A-1","qty":2}'
//
// The bridge (cmd/bridge) carries the events on to RabbitMQ, where
// examples/consumer picks them up.
package main
