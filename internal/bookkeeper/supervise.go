package bookkeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// errNotConnected is a consumer's state before its first session.
var errNotConnected = errors.New("not connected yet")

// Supervisor runs a consumer's sessions one after another, with a doubling
// wait between failed ones, and keeps the consumer's readiness state. Both
// DLQ consumers (RabbitMQ and Kafka) embed one. Configure the exported
// fields, then call Run once; Check and SetConsuming are safe for
// concurrent use.
type Supervisor struct {
	// Name names the consumer in Check's errors and in logs, e.g.
	// "rabbitmq dead-letter consumer".
	Name string
	// Source labels the consumer's errors in Metrics.
	Source deadletter.Source
	// Min and Max bound the doubling wait before the next session; a session
	// that got as far as consuming resets it to Min.
	Min, Max time.Duration
	// Logger gets one line per failed session; nil discards.
	Logger *slog.Logger
	// LogAttrs are added to that line (the queues or topics).
	LogAttrs []slog.Attr
	// Metrics counts failed sessions; nil counts nothing.
	Metrics *Metrics

	state atomic.Pointer[error] // nil: consuming
}

// SetConsuming records that the current session is consuming: Check
// reports ready until the session ends.
func (s *Supervisor) SetConsuming() { s.set(nil) }

func (s *Supervisor) set(err error) { s.state.Store(&err) }

// Check is a readiness check (health.Checker): nil while a session is
// consuming, else why not (not connected yet, stopped, or the last
// session's error).
func (s *Supervisor) Check(context.Context) error {
	p := s.state.Load()
	if p == nil {
		return fmt.Errorf("%s: %w", s.Name, errNotConnected)
	}
	if *p != nil {
		return fmt.Errorf("%s: %w", s.Name, *p)
	}
	return nil
}

// Run calls session until ctx ends, then returns nil. session connects and
// consumes until its connection fails or ctx ends; consumed reports whether
// it got as far as consuming (it should call SetConsuming then).
func (s *Supervisor) Run(ctx context.Context, session func(context.Context) (consumed bool, err error)) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wait := s.Min
	for {
		consumed, err := session(ctx)
		if ctx.Err() != nil {
			s.set(errors.New("stopped"))
			return nil
		}
		s.set(err)
		s.Metrics.Error(s.Source, ErrorConsume)
		if consumed {
			wait = s.Min
		}
		log.LogAttrs(ctx, slog.LevelWarn, s.Name+" disconnected, reconnecting",
			append(s.LogAttrs[:len(s.LogAttrs):len(s.LogAttrs)], slog.Duration("retry_in", wait), slog.Any("error", err))...)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.set(errors.New("stopped"))
			return nil
		case <-t.C:
		}
		wait = min(2*wait, s.Max)
	}
}
