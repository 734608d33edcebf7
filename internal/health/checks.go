package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/IBM/sarama"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/pkg/kafkasecurity"
)

// Pinger is what the PostgreSQL check needs; *pgxpool.Pool implements it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Postgres returns a check that pings the database through p (for a pool:
// acquire a connection and run an empty query), within ctx's deadline.
func Postgres(p Pinger) CheckFunc {
	return func(ctx context.Context) error {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("ping postgres: %w", err)
		}
		return nil
	}
}

// Kafka returns a check that connects to the brokers in turn and asks the
// first that answers for cluster metadata; it is up when one of them
// answers with at least one broker. Each call opens and closes its own
// connection (Kafka does not log client connections), and the dial, read
// and write timeouts come from ctx's deadline. The error names every broker
// tried.
func Kafka(brokers []string) CheckFunc {
	check, _ := SecureKafka(brokers, kafkasecurity.Config{}) // a zero Config has nothing to fail on
	return check
}

// SecureKafka is Kafka connecting as sec says (TLS, SASL), as the work it
// checks does. A failure's error says what was tried (sec.Explain). It
// returns sec's error when its files cannot be read.
func SecureKafka(brokers []string, sec kafkasecurity.Config) (CheckFunc, error) {
	brokers = append([]string(nil), brokers...)
	base, err := sec.NewSarama("messagekit-health")
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		if len(brokers) == 0 {
			return errors.New("kafka: no brokers configured")
		}
		var errs []error
		for _, addr := range brokers {
			err := kafkaMetadata(ctx, addr, base)
			if err == nil {
				return nil
			}
			errs = append(errs, fmt.Errorf("kafka %s: %w", addr, err))
			if ctx.Err() != nil {
				break
			}
		}
		return sec.Explain(errors.Join(errs...))
	}, nil
}

// fallbackTimeout bounds a check whose ctx has no deadline.
const fallbackTimeout = 5 * time.Second

func remaining(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return fallbackTimeout
}

func kafkaMetadata(ctx context.Context, addr string, base *sarama.Config) error {
	timeout := remaining(ctx)
	if timeout <= 0 {
		return context.DeadlineExceeded
	}
	c := *base
	conf := &c
	conf.Net.DialTimeout = timeout
	conf.Net.ReadTimeout = timeout
	conf.Net.WriteTimeout = timeout
	b := sarama.NewBroker(addr)
	if err := b.Open(conf); err != nil {
		return err
	}
	// The request and Close run apart from the caller: Close waits for the
	// connection attempt, which the timeouts above bound but which may
	// outlast ctx by a little. The goroutine ends within those timeouts.
	done := make(chan error, 1)
	go func() {
		defer func() { _ = b.Close() }()
		md, err := b.GetMetadata(sarama.NewMetadataRequest(conf.Version, nil))
		if err == nil && len(md.Brokers) == 0 {
			err = errors.New("metadata lists no brokers")
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RabbitMQCheck is a RabbitMQ readiness check that keeps one AMQP
// connection open between calls (RabbitMQ logs every connection opened and
// closed, so dialling per probe would flood the broker's log). Each Check
// dials when there is no open connection, then opens and closes a channel,
// a round trip that proves the broker still answers. A connection that
// fails or misses the deadline is dropped and dialled again next time.
// Safe for concurrent use; calls are serialised.
type RabbitMQCheck struct {
	url  string
	tls  *tls.Config
	lock chan struct{} // one slot: a mutex that a ctx can give up on
	conn *amqp.Connection
	shut bool
}

// RabbitMQ returns a check for the broker at url (amqp:// or amqps://).
// Nothing is dialled before the first Check. Close it when done.
func RabbitMQ(url string) *RabbitMQCheck { return RabbitMQTLS(url, nil) }

// RabbitMQTLS is RabbitMQ with the TLS configuration of an amqps:// url
// (CA, client certificate, server name); nil means the system roots.
func RabbitMQTLS(url string, tc *tls.Config) *RabbitMQCheck {
	return &RabbitMQCheck{url: url, tls: tc, lock: make(chan struct{}, 1)}
}

// errCheckClosed is returned by Check after Close.
var errCheckClosed = errors.New("rabbitmq check closed")

// Check reports whether the broker answers within ctx's deadline. The error
// is the dial, handshake or channel error, or ctx's error.
func (c *RabbitMQCheck) Check(ctx context.Context) error {
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.lock }()
	if c.shut {
		return errCheckClosed
	}
	if c.conn == nil || c.conn.IsClosed() {
		conn, err := dialAMQP(ctx, c.url, c.tls)
		if err != nil {
			c.conn = nil
			return fmt.Errorf("rabbitmq (%s): %w", describeAMQP(c.url, c.tls), err)
		}
		c.conn = conn
	}
	conn := c.conn
	done := make(chan error, 1)
	go func() {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Close()
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		// Closing the socket also releases the goroutine above.
		_ = conn.CloseDeadline(time.Now())
		c.conn = nil
		return fmt.Errorf("rabbitmq: open channel: %w", err)
	}
	return nil
}

// Close closes the kept connection, waiting at most a second for the
// broker's answer; later Checks fail. It waits for a running Check (which
// its deadline bounds) and is idempotent.
func (c *RabbitMQCheck) Close() error {
	c.lock <- struct{}{}
	defer func() { <-c.lock }()
	c.shut = true
	if c.conn == nil || c.conn.IsClosed() {
		c.conn = nil
		return nil
	}
	err := c.conn.CloseDeadline(time.Now().Add(time.Second))
	c.conn = nil
	if err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("rabbitmq: close: %w", err)
	}
	return nil
}

// dialAMQP dials url with every step (TCP, TLS, AMQP handshake) bounded by
// ctx's deadline; amqp091 clears the socket deadline once the handshake is
// done.
func dialAMQP(ctx context.Context, url string, tc *tls.Config) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("messagekit readiness check")
	return amqp.DialConfig(url, amqp.Config{
		Properties:      props,
		TLSClientConfig: tc,
		Dial: func(network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if err := conn.SetDeadline(time.Now().Add(remaining(ctx))); err != nil {
				_ = conn.Close()
				return nil, err
			}
			return conn, nil
		},
	})
}

// describeAMQP says how url is reached, for error messages: TLS on or off
// and, with TLS, whether a client certificate is sent. It never includes
// the URL's credentials.
func describeAMQP(url string, tc *tls.Config) string {
	uri, err := amqp.ParseURI(url)
	if err != nil {
		return "unparseable URL"
	}
	where := fmt.Sprintf("%s:%d, user %s", uri.Host, uri.Port, uri.Username)
	if uri.Scheme != "amqps" {
		return where + ", TLS off"
	}
	if tc != nil && len(tc.Certificates) > 0 {
		return where + ", TLS on with a client certificate"
	}
	return where + ", TLS on"
}
