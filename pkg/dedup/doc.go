// Package dedup processes each event effectively once per consumer: a
// handler's writes and the record that the event was processed commit in one
// PostgreSQL transaction (DESIGN.md §2, "Consume").
//
// # Claims
//
// A [Store] records processed event ids per consumer name. Claims are made
// inside a transaction: [Store.Claim] reports true for a new id and false
// for a processed one, and the claim commits or rolls back with the
// transaction, so a failed handler leaves the event to be processed again.
// Concurrent claimers of one id block on each other until the first
// transaction ends, so exactly one wins. [Store.ClaimBatch] claims many ids
// in one round trip, and [Postgres.Processed] looks many up in one.
//
// [Postgres] is the store on the processed_messages table of the messagekit
// schema; [Memory] behaves the same in memory, for unit tests. Both pass the
// conformance suite in package deduptest. Store transactions are pgx.Tx
// values, so handlers write their business rows through the same tx; a
// Memory transaction runs no SQL.
//
// [Handle] is the one-call form: begin, claim, run the handler for a new
// id, commit; it returns [Duplicate] without running the handler for a
// processed id. [Postgres.Prune] removes old ids in bounded batches.
//
// # Consumers
//
// A [Processor] is the broker-independent core of an idempotent consumer:
// it decodes envelopes (package contracts), checks the transport's message
// id against the eventId, handles new events in batches (one transaction and
// one claim round trip per batch, falling back to one transaction per
// message when a handler fails), retries transient errors with backoff and
// classifies the rest as dead letters with their stage. Errors are permanent
// when they say so: [Permanent], or any error with a Permanent() bool method
// such as [contracts.DecodeError].
//
// The broker bindings live in sub-packages so that importing this package
// drags in no broker client: amqpconsumer (RabbitMQ, amqp091-go) and
// kafkaconsumer (Kafka, sarama consumer groups).
//
// A [Router] maps event types to typed handlers registered with [On], e.g.
// func(ctx, tx pgx.Tx, u UserCreated) error, through a [contracts.Registry];
// an event of a type without a handler is a permanent error unless
// [Router.Fallback] takes it.
//
// # Metrics
//
// A Processor given a prometheus.Registerer exports, labelled with the
// consumer name: messagekit_consumer_handled_total,
// messagekit_consumer_duplicates_total,
// messagekit_consumer_dead_lettered_total{reason},
// messagekit_consumer_retries_total,
// messagekit_consumer_handler_duration_seconds,
// messagekit_consumer_batch_size and messagekit_consumer_lag_seconds.
package dedup
