package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"

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

// amqpConn is the bridge's one AMQP connection, redialed (and the topology
// declared again) when a partition asks for a channel after it was lost.
// It is safe for concurrent use: partitions that lose their channels
// together share one redial.
type amqpConn struct {
	dial    func() (*amqp.Connection, error)
	declare func(*amqp.Connection) error

	mu   sync.Mutex
	conn *amqp.Connection
}

// channel opens a confirm-mode channel, first redialing and declaring when
// the connection is closed. One attempt; the caller retries with backoff.
func (c *amqpConn) channel(batch int) (*amqpChannel, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.conn.IsClosed() {
		conn, err := c.dial()
		if err != nil {
			return nil, fmt.Errorf("bridge: reconnect to RabbitMQ: %w", err)
		}
		if err := c.declare(conn); err != nil {
			_ = conn.Close()
			return nil, err
		}
		c.conn = conn
	}
	ch, err := openChannel(c.conn, batch)
	if err != nil {
		return nil, fmt.Errorf("bridge: open AMQP channel: %w", err)
	}
	return ch, nil
}

// close closes the current connection.
func (c *amqpConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		_ = c.conn.Close()
	}
}
