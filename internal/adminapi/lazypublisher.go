package adminapi

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// PublisherCloser is an outbox.Publisher with a Close, such as
// *outboxsarama.Publisher.
type PublisherCloser interface {
	outbox.Publisher
	Close() error
}

// LazyPublisher is an outbox.Publisher that builds its publisher on first
// use, and again on the next use after building failed, so the API starts
// while Kafka is down (readiness reports it). It is safe for concurrent
// use; Close releases it.
type LazyPublisher struct {
	build func() (PublisherCloser, error)

	mu     sync.Mutex
	pub    PublisherCloser
	closed bool
}

// NewLazyPublisher returns a LazyPublisher that builds with build.
func NewLazyPublisher(build func() (PublisherCloser, error)) *LazyPublisher {
	return &LazyPublisher{build: build}
}

func (l *LazyPublisher) get() (PublisherCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("kafka publisher closed")
	}
	if l.pub == nil {
		pub, err := l.build()
		if err != nil {
			return nil, fmt.Errorf("connect to Kafka: %w", err)
		}
		l.pub = pub
	}
	return l.pub, nil
}

// Publish implements outbox.Publisher.
func (l *LazyPublisher) Publish(ctx context.Context, records []outbox.Record) []error {
	pub, err := l.get()
	if err != nil {
		return repeatErr(err, len(records))
	}
	return pub.Publish(ctx, records)
}

// Close closes the publisher if it was built. It is idempotent.
func (l *LazyPublisher) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.pub == nil {
		return nil
	}
	err := l.pub.Close()
	l.pub = nil
	return err
}
