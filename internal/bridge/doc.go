// Package bridge republishes the events of Kafka topics to a RabbitMQ
// exchange, at least once and in partition order (DESIGN.md §2–3).
//
// A [Bridge] consumes its topics in a sarama consumer group with
// cooperative-sticky rebalancing. Each claimed partition runs in its own
// goroutine with its own AMQP channel in confirm mode, one batch at a time:
//
//  1. take what has been fetched, up to BatchSize records (an idle
//     partition waits for a first record, then at most BatchWait for more);
//  2. dead-letter poison records (over MaxRecordBytes, not an envelope, a
//     bad id) to the Kafka DLQ topic with the Kafka Connect headers;
//  3. look the batch's dedup keys up in processed_messages and skip those
//     already bridged; the same round trip first records the confirmed keys
//     of the batch before, whose offsets are marked once it committed;
//  4. publish the rest in Kafka order, pipelined, then wait for every
//     confirm; a nack is retried with backoff, then dead-lettered with stage
//     AMQP_NACK; a mandatory return is dropped or dead-lettered per
//     [Config.Unroutable];
//  5. when no record is waiting, record the confirmed keys at once (one
//     round trip) and mark the batch's offsets, which the group commits
//     automatically.
//
// An offset is thus marked only after every earlier record of its partition
// was confirmed by RabbitMQ or acknowledged by the Kafka DLQ topic. A
// replayed record (Kafka header replayId) dedups on (eventId, replayId)
// through [ReplayKey]. See docs/adr/0012-bridge.md for the reasoning.
//
// While the dedup store's circuit breaker is open, partitions pause; a lost
// RabbitMQ connection is reopened and the unconfirmed records published
// again; [Config.MaxRate] limits the publish rate of all partitions.
//
// # Tracing
//
// Every publish of a record gets a span of [Config.TracerProvider] named
// "<exchange> publish", kind consumer, with the messaging semantic
// convention attributes (messaging.system rabbitmq, the exchange, the
// routing key, the event id as message id) and the record's Kafka topic,
// partition and offset. Its parent is the trace context that
// [Config.Propagator] extracts from the record's Kafka headers (a root span
// when there is none), and its own context is injected into the AMQP
// headers (traceparent, tracestate).
//
// # Metrics
//
// Given a prometheus.Registerer, a Bridge exports
// messagekit_bridge_records_consumed_total{topic},
// messagekit_bridge_published_total,
// messagekit_bridge_duplicates_skipped_total,
// messagekit_bridge_dead_lettered_total{stage},
// messagekit_bridge_unroutable_total{routing_key},
// messagekit_bridge_publish_latency_seconds (a batch's publish to its last
// confirm), messagekit_bridge_batch_size and
// messagekit_bridge_end_to_end_lag_seconds (confirm time − occurredAt),
// messagekit_bridge_breaker_state and
// messagekit_bridge_consumer_lag_records{topic,partition} (the partition's
// high-water mark minus the next offset to mark, set after every batch and
// deleted when the partition is revoked).
package bridge
