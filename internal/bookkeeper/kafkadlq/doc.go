// Package kafkadlq is the Kafka side of the dlq-bookkeeper: a sarama
// consumer group over the DLQ topics that parses each record's
// __connect.errors.* headers ([Parse]) — as the bridge writes them
// (DESIGN.md §3) and as Kafka Connect sink connectors write them, values as
// UTF-8 strings — and marks a batch's offsets only after a
// bookkeeper.Recorder committed it.
//
// What each dead letter records:
//
//	origin         __connect.errors.topic, else the DLQ topic
//	reason         __connect.errors.stage (DECODE, VALIDATE, RECORD_TOO_LARGE, AMQP_NACK, AMQP_UNROUTABLE,
//	               TASK_PUT, VALUE_CONVERTER, …), else unparseable
//	error_message  __connect.errors.exception.message, else "dead-lettered at stage S by C (class)",
//	               or "unparseable dead letter in Kafka topic T: <what is wrong>"
//	event_id       header id when it is a UUID, else the body's eventId
//	event_type     header eventType, else the body's eventType
//	headers        every record header, in order, as deadletter.EncodeKafkaHeaders renders them
//	message_key    the record key; body: the record value
//
// A record without usable Connect headers is stored raw and its offset
// marked: only a database failure keeps an offset unmarked.
package kafkadlq
