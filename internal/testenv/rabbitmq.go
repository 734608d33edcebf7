package testenv

import (
	"errors"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQPVariable names the RabbitMQ broker used by integration tests.
const AMQPVariable = "TEST_AMQP_URL"

// DefaultAMQPURL is used when AMQPVariable is unset.
const DefaultAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

// Broker is a RabbitMQ broker shared by tests; names made with Name are this
// test's own.
type Broker struct {
	// URL connects to the broker.
	URL string

	t     testing.TB
	mu    sync.Mutex
	names []string
}

var amqpServer = sync.OnceValues(func() (string, error) {
	u := envOr(AMQPVariable, DefaultAMQPURL)
	errLocal := pingAMQP(u)
	if errLocal == nil {
		return u, nil
	}
	hostPort, errDocker := startContainer("rabbitmq", "3.10", nil, "5672/tcp",
		func(hp string) error { return pingAMQP("amqp://guest:guest@" + hp + "/") })
	if errDocker != nil {
		return "", errors.Join(errLocal, errDocker)
	}
	return "amqp://guest:guest@" + hostPort + "/", nil
})

func pingAMQP(u string) error {
	conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(probeTimeout)})
	if err != nil {
		return err
	}
	return conn.Close()
}

// RabbitMQ returns the broker, skipping or failing t when it is unreachable.
// Exchanges and queues named with the returned Broker's Name are deleted when
// the test ends.
func RabbitMQ(t testing.TB) *Broker {
	t.Helper()
	skipShort(t)
	u, err := amqpServer()
	if err != nil {
		unavailable(t, AMQPVariable, err)
	}
	b := &Broker{URL: u, t: t}
	t.Cleanup(b.deleteAll)
	return b
}

// Name returns a name unique to this test for an exchange or queue; whatever
// the test declares under it is deleted when the test ends.
func (b *Broker) Name(base string) string {
	b.t.Helper()
	n := UniqueName(b.t, base)
	b.mu.Lock()
	b.names = append(b.names, n)
	b.mu.Unlock()
	return n
}

// Track marks names the test's own, as Name does, for names the test made
// some other way (e.g. a UniqueName prefix and suffixes).
func (b *Broker) Track(names ...string) {
	b.mu.Lock()
	b.names = append(b.names, names...)
	b.mu.Unlock()
}

// Dial opens a connection that is closed when the test ends.
func (b *Broker) Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	conn, err := amqp.DialConfig(b.URL, amqp.Config{Dial: amqp.DefaultDial(probeTimeout)})
	if err != nil {
		t.Fatalf("testenv: dial RabbitMQ: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Channel opens a channel on a new connection; both close when the test ends.
func (b *Broker) Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	ch, err := b.Dial(t).Channel()
	if err != nil {
		t.Fatalf("testenv: open channel: %v", err)
	}
	return ch
}

// deleteAll removes every queue and exchange named through Name. A name may
// be a queue, an exchange, both or neither; a failed delete closes its
// channel, so each delete gets a fresh one.
func (b *Broker) deleteAll() {
	b.mu.Lock()
	names := b.names
	b.mu.Unlock()
	if len(names) == 0 {
		return
	}
	conn, err := amqp.DialConfig(b.URL, amqp.Config{Dial: amqp.DefaultDial(probeTimeout)})
	if err != nil {
		b.t.Logf("testenv: RabbitMQ clean-up skipped: %v", err)
		return
	}
	defer func() { _ = conn.Close() }()
	for _, n := range names {
		for _, del := range []func(*amqp.Channel) error{
			func(ch *amqp.Channel) error { _, err := ch.QueueDelete(n, false, false, false); return err },
			func(ch *amqp.Channel) error { return ch.ExchangeDelete(n, false, false) },
		} {
			ch, err := conn.Channel()
			if err != nil {
				b.t.Logf("testenv: RabbitMQ clean-up of %s: %v", n, err)
				return
			}
			_ = del(ch) // not found is fine: the name may not have been used for both kinds
			_ = ch.Close()
		}
	}
}
