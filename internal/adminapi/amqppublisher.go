package adminapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrUnroutable is reported by a [QueuePublisher] for a message the broker
// returned as unroutable: its queue no longer exists.
var ErrUnroutable = errors.New("returned unroutable")

// QueueMessage is one message for a queue, sent through the default
// exchange with the queue's name as routing key.
type QueueMessage struct {
	Queue string
	Msg   amqp.Publishing
}

// QueuePublisher sends messages to RabbitMQ queues and waits for the
// broker's confirms. PublishToQueues returns nil when every message was
// confirmed, else one entry per message: nil for a confirmed one, the
// reason for any other (wrapping [ErrUnroutable] when it was returned).
type QueuePublisher interface {
	PublishToQueues(ctx context.Context, msgs []QueueMessage) []error
}

// AMQPPublisher is the [QueuePublisher] on amqp091: each call publishes on
// its own confirm-mode channel, mandatory, to the default exchange. It
// dials on first use and again after the connection is lost. It is safe
// for concurrent use; Close releases it.
type AMQPPublisher struct {
	url  string
	name string
	tls  *tls.Config

	mu     sync.Mutex
	conn   *amqp.Connection
	closed bool
}

// NewAMQPPublisher returns a publisher for the broker at url; connName is
// the client connection name shown in the management UI.
func NewAMQPPublisher(url, connName string) *AMQPPublisher {
	return &AMQPPublisher{url: url, name: connName}
}

// WithTLS sets the TLS configuration of an amqps:// url (CA, client
// certificate, server name; cloned per connection) and returns p. Call it
// before first use.
func (p *AMQPPublisher) WithTLS(tc *tls.Config) *AMQPPublisher {
	p.tls = tc
	return p
}

func (p *AMQPPublisher) connection() (*amqp.Connection, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("amqp publisher closed")
	}
	if p.conn != nil && !p.conn.IsClosed() {
		return p.conn, nil
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(p.name)
	var tc *tls.Config
	if p.tls != nil {
		tc = p.tls.Clone()
	}
	conn, err := amqp.DialConfig(p.url, amqp.Config{Properties: props, TLSClientConfig: tc})
	if err != nil {
		return nil, fmt.Errorf("dial RabbitMQ: %w", err)
	}
	p.conn = conn
	return conn, nil
}

// PublishToQueues implements [QueuePublisher].
func (p *AMQPPublisher) PublishToQueues(ctx context.Context, msgs []QueueMessage) []error {
	if len(msgs) == 0 {
		return nil
	}
	conn, err := p.connection()
	if err != nil {
		return repeatErr(err, len(msgs))
	}
	ch, err := conn.Channel()
	if err != nil {
		return repeatErr(fmt.Errorf("open channel: %w", err), len(msgs))
	}
	defer func() { _ = ch.Close() }()
	if err := ch.Confirm(false); err != nil {
		return repeatErr(fmt.Errorf("confirm mode: %w", err), len(msgs))
	}
	// RabbitMQ sends a basic.return before the message's ack, and amqp091
	// delivers both in order, so every return is buffered here by the time
	// its confirm arrives.
	returns := ch.NotifyReturn(make(chan amqp.Return, len(msgs)))
	errs := make([]error, len(msgs))
	confirms := make([]*amqp.DeferredConfirmation, len(msgs))
	failed := false
	for i, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", m.Queue, true, false, m.Msg)
		if err != nil {
			errs[i], failed = fmt.Errorf("publish to queue %s: %w", m.Queue, err), true
			continue
		}
		confirms[i] = dc
	}
	for i, dc := range confirms {
		if dc == nil {
			continue
		}
		ok, err := dc.WaitContext(ctx)
		switch {
		case err != nil:
			errs[i], failed = fmt.Errorf("confirm from queue %s: %w", msgs[i].Queue, err), true
		case !ok:
			errs[i], failed = fmt.Errorf("queue %s: broker nacked the message", msgs[i].Queue), true
		}
	}
	returned := map[string]string{}
drain:
	for {
		select {
		case r := <-returns:
			returned[r.RoutingKey] = fmt.Sprintf("%d %s", r.ReplyCode, r.ReplyText)
		default:
			break drain
		}
	}
	for i, m := range msgs {
		if why, ok := returned[m.Queue]; ok && errs[i] == nil {
			errs[i], failed = fmt.Errorf("queue %s does not exist (%s): %w", m.Queue, why, ErrUnroutable), true
		}
	}
	if !failed {
		return nil
	}
	return errs
}

// Close closes the connection. It is idempotent.
func (p *AMQPPublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.conn == nil {
		return nil
	}
	err := p.conn.Close()
	p.conn = nil
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}

func repeatErr(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
