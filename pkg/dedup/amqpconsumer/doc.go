// Package amqpconsumer runs an idempotent consumer on a RabbitMQ queue
// (amqp091-go): each event's handler runs in its dedup transaction
// (package dedup) and the message is acknowledged only after that
// transaction committed.
//
// # Delivery semantics
//
// The consumer uses manual acknowledgements with a prefetch window
// ([Config.Prefetch]). Messages that have arrived are handled together, up
// to [Config.MaxBatch] per transaction, and acknowledged with one multiple
// ack after the commit. The dedup key is the AMQP message_id property, which
// the bridge sets to the envelope's eventId (DESIGN.md §3):
//
//   - a message without message_id, with a message_id that is not a UUID
//     or that differs from the envelope's eventId, a body that is not a
//     valid envelope, an event type without a handler, or a handler error
//     that says it is permanent is rejected with requeue=false, so the
//     broker dead-letters it to the queue's dead-letter exchange
//     ([Config.DLX], default events.dlx) with routing key and body intact;
//   - a transient handler error is retried in process with backoff
//     ([Config.Retry]) and the message dead-lettered when the attempts run
//     out;
//   - a message whose event was already processed is acknowledged without
//     running the handler. This is how a redelivery after a crash between
//     commit and ack, or after a lost connection, is recognised.
//
// A message_id that disagrees with the eventId is a publisher bug: dedup
// on either id could drop a distinct event or run one twice, so it is
// dead-lettered for a human to look at rather than guessed at.
//
// # Dead-letter reasons
//
// RabbitMQ records a rejection in the x-death header with reason
// "rejected", the queue, the exchange and the routing keys; a rejection
// cannot carry headers of the consumer's own. Why the consumer rejected a
// message (stage DECODE, VALIDATE or TASK_PUT, and the error) is therefore
// logged with the message_id and counted in
// messagekit_consumer_dead_lettered_total{reason}. Republishing the message
// with extra headers instead would lose x-death and break the DLX path the
// bookkeeper relies on (DESIGN.md §3, §6).
//
// # Connection loss and shutdown
//
// After the connection or channel is lost the consumer reconnects with
// backoff, declares again ([Config.Declare]) and resumes; the broker
// redelivers the unacknowledged messages, and those already committed are
// recognised as duplicates. [Consumer.Run] stops gracefully when its
// context ends: the batch in flight is finished and acknowledged, the
// rest of the prefetched messages return to the queue.
package amqpconsumer
