package bridge

import (
	"fmt"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// RecordTooLargeError is why a record over [Config.MaxRecordBytes] is
// dead-lettered (stage RECORD_TOO_LARGE). It wraps [contracts.ErrTooLarge].
type RecordTooLargeError struct {
	// Size is the record's key plus value length; Max the limit.
	Size, Max int
}

// Error returns "record of <size> bytes is over the limit of <max>".
func (e *RecordTooLargeError) Error() string {
	return fmt.Sprintf("record of %d bytes is over the limit of %d", e.Size, e.Max)
}

// Unwrap returns [contracts.ErrTooLarge].
func (e *RecordTooLargeError) Unwrap() error { return contracts.ErrTooLarge }

// NackError is why a record RabbitMQ kept nacking is dead-lettered (stage
// AMQP_NACK).
type NackError struct {
	// Exchange and RoutingKey are where the message was published.
	Exchange, RoutingKey string
	// Attempts is how many times it was published.
	Attempts int
}

// Error says where the message was nacked and how often.
func (e *NackError) Error() string {
	return fmt.Sprintf("RabbitMQ nacked the message to exchange %q with routing key %q %d times", e.Exchange, e.RoutingKey, e.Attempts)
}

// UnroutableError is why a returned message is dead-lettered (stage
// AMQP_UNROUTABLE) under [UnroutableDLQ].
type UnroutableError struct {
	// Exchange and RoutingKey are where the message was published.
	Exchange, RoutingKey string
	// ReplyCode and ReplyText are RabbitMQ's basic.return reason.
	ReplyCode uint16
	ReplyText string
}

// Error says where the message found no queue.
func (e *UnroutableError) Error() string {
	return fmt.Sprintf("RabbitMQ returned the message to exchange %q with routing key %q: %d %s", e.Exchange, e.RoutingKey, e.ReplyCode, e.ReplyText)
}
