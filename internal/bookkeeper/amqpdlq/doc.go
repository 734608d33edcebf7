// Package amqpdlq is the RabbitMQ side of the dlq-bookkeeper: it declares
// the dead-letter exchange and queues (DESIGN.md §3 "RabbitMQ dead
// letters"), consumes the dead-letter queues with manual acknowledgement,
// parses each message's x-death header ([Parse]) and acknowledges a batch
// only after a bookkeeper.Recorder committed it.
//
// What each dead letter records:
//
//	origin         x-death[0].queue (else x-last-death-queue, x-first-death-queue, the DLQ itself)
//	reason         x-death[0].reason: rejected, expired, maxlen, delivery_limit (else as origin; else unparseable)
//	error_message  "rejected by queue Q", "expired in queue Q", "maxlen in queue Q", "delivery_limit in queue Q",
//	               or "unparseable dead letter in queue DLQ: <what is wrong>"
//	event_id       message_id when it is a UUID, else the body's eventId
//	event_type     the type property, else the body's eventType
//	headers        properties and headers, as package amqpheaders renders them
//
// A message whose x-death is missing or broken is still stored (raw, with
// the best reason available) and acknowledged: only a database failure
// leaves a message unacknowledged.
package amqpdlq
