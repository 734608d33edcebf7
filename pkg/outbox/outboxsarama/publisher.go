package outboxsarama

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"

	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// ErrClosed is returned for records passed to [Publisher.Publish] after
// [Publisher.Close].
var ErrClosed = errors.New("outboxsarama: publisher closed")

// Config configures a [Publisher]. The zero value is ready to use.
type Config struct {
	// Sarama is the base client configuration (TLS, SASL, client id,
	// timeouts, compression, Producer.MaxMessageBytes, retries …); nil means
	// sarama.NewConfig(). It is copied, then the settings the Relay's
	// guarantees depend on are forced: Producer.Idempotent,
	// Producer.RequiredAcks = WaitForAll, Net.MaxOpenRequests = 1,
	// Producer.Return.Successes and .Errors, and Producer.Partitioner (see
	// Partitioner). Version must be at least V0_11_0_0 (sarama's default,
	// V2_8_0_0, is).
	Sarama *sarama.Config
	// Partitioner places records by key. Nil means [NewMurmur2Partitioner],
	// which agrees with Debezium and the Java client.
	Partitioner sarama.PartitionerConstructor
}

// Publisher is an [outbox.Publisher] on a sarama AsyncProducer. Create it
// with [New]; it is safe for concurrent use, and [Publisher.Close] releases
// it.
type Publisher struct {
	producer sarama.AsyncProducer
	wg       sync.WaitGroup // the result readers

	mu     sync.RWMutex // held for reading while sending to the producer
	closed bool
}

// New connects to brokers and returns a Publisher. It returns sarama's
// error when the configuration is invalid or no broker can be reached.
func New(brokers []string, cfg Config) (*Publisher, error) {
	var sc sarama.Config
	if cfg.Sarama != nil {
		sc = *cfg.Sarama
	} else {
		sc = *sarama.NewConfig()
	}
	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	if sc.Producer.Retry.Max < 1 {
		sc.Producer.Retry.Max = 1
	}
	sc.Producer.Partitioner = cfg.Partitioner
	if sc.Producer.Partitioner == nil {
		sc.Producer.Partitioner = NewMurmur2Partitioner
	}
	producer, err := sarama.NewAsyncProducer(brokers, &sc)
	if err != nil {
		return nil, fmt.Errorf("outboxsarama: new producer: %w", err)
	}
	p := &Publisher{producer: producer}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		for msg := range producer.Successes() {
			msg.Metadata.(*slot).resolve(nil)
		}
	}()
	go func() {
		defer p.wg.Done()
		for pe := range producer.Errors() {
			pe.Msg.Metadata.(*slot).resolve(classify(pe.Err))
		}
	}()
	return p, nil
}

// call tracks the records of one Publish.
type call struct {
	mu        sync.Mutex
	errs      []error
	resolved  []bool
	remaining int
	finished  bool // Publish returned: late results are dropped
	done      chan struct{}
}

// settle records record i's result once; c.mu must be held.
func (c *call) settle(i int, err error) {
	if c.finished || c.resolved[i] {
		return
	}
	c.errs[i], c.resolved[i] = err, true
	c.remaining--
	if c.remaining == 0 {
		close(c.done)
	}
}

type slot struct {
	call *call
	i    int
}

func (s *slot) resolve(err error) {
	s.call.mu.Lock()
	defer s.call.mu.Unlock()
	s.call.settle(s.i, err)
}

// Publish implements [outbox.Publisher]: it hands records to the producer
// and waits until each is acknowledged or failed, or ctx ends (the records
// not yet acknowledged then report ctx's error; they may still be written
// later, which the Relay tolerates). A record failed for good — larger than
// Producer.MaxMessageBytes or than the broker accepts, or rejected as an
// invalid record — reports an error whose Permanent() is true. Records
// passed after Close report [ErrClosed].
func (p *Publisher) Publish(ctx context.Context, records []outbox.Record) []error {
	if len(records) == 0 {
		return nil
	}
	c := &call{
		errs: make([]error, len(records)), resolved: make([]bool, len(records)),
		remaining: len(records), done: make(chan struct{}),
	}
	sent := 0
	p.mu.RLock()
	if !p.closed {
	send:
		for i := range records {
			msg := message(&records[i])
			msg.Metadata = &slot{call: c, i: i}
			select {
			case p.producer.Input() <- msg:
				sent++
			case <-ctx.Done():
				break send
			}
		}
	}
	p.mu.RUnlock()
	if sent < len(records) {
		abort := ErrClosed
		if ctx.Err() != nil {
			abort = fmt.Errorf("outboxsarama: %w", ctx.Err())
		}
		c.mu.Lock()
		for i := sent; i < len(records); i++ {
			c.settle(i, abort)
		}
		c.mu.Unlock()
	}
	select {
	case <-c.done:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.remaining > 0 { // ctx ended first
		err := fmt.Errorf("outboxsarama: %w", ctx.Err())
		for i := range records {
			c.settle(i, err) // only the unresolved
		}
	}
	c.finished = true
	for _, err := range c.errs {
		if err != nil {
			return c.errs
		}
	}
	return nil
}

func message(r *outbox.Record) *sarama.ProducerMessage {
	headers := make([]sarama.RecordHeader, len(r.Headers))
	for i, h := range r.Headers {
		headers[i] = sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value}
	}
	msg := &sarama.ProducerMessage{Topic: r.Topic, Value: sarama.ByteEncoder(r.Value), Headers: headers}
	if r.Key != nil {
		msg.Key = sarama.ByteEncoder(r.Key)
	}
	return msg
}

// Close stops accepting records, lets the producer finish the records in
// flight (at most until sarama's retries give up; their Publish calls get
// the results) and closes its connections. It is idempotent and returns
// nil.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.producer.AsyncClose()
	p.wg.Wait()
	return nil
}

// PublishError is the error Publish reports for a record the producer
// failed.
type PublishError struct {
	// Err is sarama's error: a sarama.KError from the broker, or a
	// sarama.ConfigurationError for a record the client refused to send.
	Err       error
	permanent bool
}

// Error returns "kafka produce: " and sarama's message.
func (e *PublishError) Error() string { return "kafka produce: " + e.Err.Error() }

// Unwrap returns sarama's error.
func (e *PublishError) Unwrap() error { return e.Err }

// Permanent reports whether the record can never be written as it is.
func (e *PublishError) Permanent() bool { return e.permanent }

// permanentKErrors are broker answers about the record itself: sending it
// again can not help. Everything else (leadership changes, timeouts,
// authorization, a broker down) may pass.
var permanentKErrors = map[sarama.KError]bool{
	sarama.ErrMessageSizeTooLarge:    true,
	sarama.ErrMessageSetSizeTooLarge: true,
	sarama.ErrInvalidRecord:          true,
	sarama.ErrInvalidTimestamp:       true,
}

func classify(err error) error {
	var kerr sarama.KError
	var cerr sarama.ConfigurationError
	switch {
	case errors.As(err, &kerr):
		return &PublishError{Err: err, permanent: permanentKErrors[kerr]}
	case errors.As(err, &cerr):
		// Raised per record in the producer's dispatcher: too large for
		// Producer.MaxMessageBytes, headers on a pre-0.11 version.
		return &PublishError{Err: err, permanent: true}
	}
	return &PublishError{Err: err}
}
