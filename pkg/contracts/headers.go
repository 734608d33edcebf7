package contracts

// Kafka record headers (DESIGN.md §3), UTF-8 values. Debezium's outbox
// router and outbox.Relay write them; the bridge reads them.
const (
	// KafkaHeaderID carries the eventId. The bridge takes the event id from
	// this header and falls back to the body.
	KafkaHeaderID = "id"
	// KafkaHeaderEventType carries the eventType.
	KafkaHeaderEventType = "eventType"
	// KafkaHeaderAggregateType carries the outbox row's aggregate type, when set.
	KafkaHeaderAggregateType = "aggregateType"
	// KafkaHeaderTraceparent carries the W3C trace context of the writer.
	KafkaHeaderTraceparent = "traceparent"
	// KafkaHeaderTracestate carries the W3C trace state of the writer.
	KafkaHeaderTracestate = "tracestate"
	// KafkaHeaderReplayID is set on records re-sent by a replay: one id per
	// replay request. The bridge dedups replays on (eventId, replayId).
	KafkaHeaderReplayID = "replayId"
)

// AMQP message headers and properties written by the bridge (DESIGN.md §3, §6).
const (
	// AMQPHeaderAggregateID carries the envelope's aggregateId.
	AMQPHeaderAggregateID = "x-aggregate-id"
	// AMQPHeaderKafkaTopic carries the Kafka topic the record came from.
	AMQPHeaderKafkaTopic = "x-kafka-topic"
	// AMQPHeaderKafkaPartition carries the Kafka partition, as an int32.
	AMQPHeaderKafkaPartition = "x-kafka-partition"
	// AMQPHeaderKafkaOffset carries the Kafka offset, as an int64.
	AMQPHeaderKafkaOffset = "x-kafka-offset"
	// AMQPHeaderReplayID is set on replayed messages: the replay request's id.
	AMQPHeaderReplayID = "x-replay-id"
	// AMQPHeaderReplayCount is set on replayed messages: how many times this
	// dead letter was replayed, as an integer.
	AMQPHeaderReplayCount = "x-replay-count"
	// AMQPHeaderTraceparent carries the W3C trace context of the bridge span.
	AMQPHeaderTraceparent = "traceparent"
	// AMQPHeaderTracestate carries the W3C trace state of the bridge span.
	AMQPHeaderTracestate = "tracestate"
	// ContentTypeJSON is the AMQP content_type property of every envelope.
	ContentTypeJSON = "application/json"
)

// Kafka dead-letter record headers, following Kafka Connect's DLQ convention
// (DESIGN.md §3). Values are UTF-8 strings.
const (
	// DLQHeaderTopic carries the original topic.
	DLQHeaderTopic = "__connect.errors.topic"
	// DLQHeaderPartition carries the original partition.
	DLQHeaderPartition = "__connect.errors.partition"
	// DLQHeaderOffset carries the original offset.
	DLQHeaderOffset = "__connect.errors.offset"
	// DLQHeaderConnectorName carries the name of the writer: [DLQConnectorName]
	// for the bridge.
	DLQHeaderConnectorName = "__connect.errors.connector.name"
	// DLQHeaderTaskID carries the id of the task that failed.
	DLQHeaderTaskID = "__connect.errors.task.id"
	// DLQHeaderStage carries the [Stage] at which the record failed.
	DLQHeaderStage = "__connect.errors.stage"
	// DLQHeaderClassName carries the class (for the bridge, the Go type) of
	// the component that failed.
	DLQHeaderClassName = "__connect.errors.class.name"
	// DLQHeaderExceptionClassName carries the class (Go type) of the error.
	DLQHeaderExceptionClassName = "__connect.errors.exception.class.name"
	// DLQHeaderExceptionMessage carries the error message.
	DLQHeaderExceptionMessage = "__connect.errors.exception.message"
	// DLQConnectorName is the value of [DLQHeaderConnectorName] on records
	// the bridge dead-letters.
	DLQConnectorName = "messagekit-bridge"
)
