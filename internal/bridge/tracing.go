package bridge

import (
	"context"

	"github.com/IBM/sarama"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the bridge's spans.
const tracerName = "github.com/firstunicorn/messagekit-go/internal/bridge"

// Span attributes: OpenTelemetry's messaging semantic conventions, plus the
// Kafka coordinates of the bridged record.
const (
	attrSystem         = attribute.Key("messaging.system")
	attrOperationName  = attribute.Key("messaging.operation.name")
	attrOperationType  = attribute.Key("messaging.operation.type")
	attrDestination    = attribute.Key("messaging.destination.name")
	attrRoutingKey     = attribute.Key("messaging.rabbitmq.destination.routing_key")
	attrMessageID      = attribute.Key("messaging.message.id")
	attrConversationID = attribute.Key("messaging.message.conversation_id")
	attrBodySize       = attribute.Key("messaging.message.body.size")
	attrKafkaTopic     = attribute.Key("messaging.kafka.source.topic")
	attrKafkaPartition = attribute.Key("messaging.kafka.source.partition")
	attrKafkaOffset    = attribute.Key("messaging.kafka.offset")
)

// startSpan starts the span of one publish of r, a child of the trace
// context in the record's Kafka headers (a root span when there is none).
func (b *Bridge) startSpan(r *record) (context.Context, trace.Span) {
	msg := r.msg
	parent := b.cfg.Propagator.Extract(context.Background(), kafkaCarrier(msg.Headers))
	if !b.recordSpans {
		// A no-op provider's span is the parent's own span context, so the
		// parent is passed on as it is (its traceparent still reaches the
		// AMQP headers); starting one, and building ten attributes, per
		// record would be wasted.
		return parent, trace.SpanFromContext(parent)
	}
	attrs := []attribute.KeyValue{
		attrSystem.String("rabbitmq"),
		attrOperationName.String("publish"),
		attrOperationType.String("send"),
		attrDestination.String(b.cfg.Exchange),
		attrRoutingKey.String(r.routingKey),
		attrMessageID.String(r.env.EventID.String()),
		attrBodySize.Int(len(msg.Value)),
		attrKafkaTopic.String(msg.Topic),
		attrKafkaPartition.Int64(int64(msg.Partition)),
		attrKafkaOffset.Int64(msg.Offset),
	}
	if r.env.CorrelationID != "" {
		attrs = append(attrs, attrConversationID.String(r.env.CorrelationID))
	}
	return b.tracer.Start(parent, b.spanName,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// endSpan ends span with an error status when err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// kafkaCarrier reads a record's headers for a propagator; it only extracts.
type kafkaCarrier []*sarama.RecordHeader

func (c kafkaCarrier) Get(key string) string {
	for _, h := range c {
		if h != nil && string(h.Key) == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c kafkaCarrier) Set(string, string) {}

func (c kafkaCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for _, h := range c {
		if h != nil {
			keys = append(keys, string(h.Key))
		}
	}
	return keys
}

// amqpCarrier writes a propagator's headers into an AMQP header table.
type amqpCarrier amqp.Table

func (c amqpCarrier) Get(key string) string {
	s, _ := c[key].(string)
	return s
}

func (c amqpCarrier) Set(key, value string) { c[key] = value }

func (c amqpCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
