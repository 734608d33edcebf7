package bridge

import (
	"context"
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"
)

// errChannelClosed reports a confirm lost to a closed channel: amqp091
// resolves pending confirms as nacks when the channel closes, which must
// not be mistaken for RabbitMQ's nacks.
var errChannelClosed = errors.New("AMQP channel closed before the confirm")

// amqpChannel is the [publisher] on one channel in confirm mode.
type amqpChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
}

// openChannel opens a channel in confirm mode whose returns are buffered
// for batch publishes: the buffer must hold a round's returns, or the
// connection's reader would block on it before delivering the confirms.
func openChannel(conn *amqp.Connection, batch int) (*amqpChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, batch+1))
	return &amqpChannel{ch: ch, returns: returns}, nil
}

func (c *amqpChannel) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirmation, error) {
	d, err := c.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (bool, error) {
		ack, err := d.WaitContext(ctx)
		if err != nil {
			return false, err
		}
		if !ack && c.ch.IsClosed() {
			return false, errChannelClosed
		}
		return ack, nil
	}, nil
}

func (c *amqpChannel) Returned() []amqp.Return {
	var out []amqp.Return
	for {
		select {
		case r, ok := <-c.returns:
			if !ok {
				return out
			}
			out = append(out, r)
		default:
			return out
		}
	}
}

func (c *amqpChannel) close() { _ = c.ch.Close() }
