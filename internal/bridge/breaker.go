package bridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/sony/gobreaker/v2"
)

// ErrBreakerOpen is returned, wrapped, by [Bridge.Check] while the dedup
// store's circuit breaker is open or half-open: the bridge is not bridging.
var ErrBreakerOpen = errors.New("bridge: dedup store circuit breaker is not closed")

// ErrNotAuthorized is returned, wrapped, by [Bridge.ConsumerCheck] while
// Kafka refuses the consumer group its topics or group for want of an ACL.
var ErrNotAuthorized = errors.New("bridge: kafka consumer not authorized")

// newBreaker returns the breaker around the dedup store calls: it opens
// after cfg.BreakerFailures consecutive failures, lets one probe through
// after cfg.BreakerTimeout, and reports every state to m.
func newBreaker(cfg *Config, m *metrics, log interface {
	Warn(msg string, args ...any)
	Info(msg string, args ...any)
}) *gobreaker.CircuitBreaker[struct{}] {
	failures := uint32(cfg.BreakerFailures)
	m.breakerState.Set(float64(gobreaker.StateClosed))
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "bridge-dedup-store",
		MaxRequests: 1,
		Timeout:     cfg.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// gobreaker's states are 0 closed, 1 half-open, 2 open: the
			// gauge's documented values.
			m.breakerState.Set(float64(to))
			if to == gobreaker.StateOpen {
				log.Warn("dedup store circuit breaker opened", "from", from.String(), "retry_in", cfg.BreakerTimeout)
			} else {
				log.Info("dedup store circuit breaker changed state", "from", from.String(), "to", to.String())
			}
		},
	})
}

// Check is a readiness check: nil while the dedup store's circuit breaker
// is closed, else an error wrapping [ErrBreakerOpen]. It is safe for
// concurrent use.
func (b *Bridge) Check(context.Context) error {
	if s := b.breaker.State(); s != gobreaker.StateClosed {
		return fmt.Errorf("%w: %s", ErrBreakerOpen, s)
	}
	return nil
}

// ConsumerCheck is a readiness check: an error wrapping
// [ErrNotAuthorized] while the consumer group's last attempt to consume
// failed for want of an ACL (topic, group or cluster), nil before the
// first attempt and once a session starts. Other consume errors (a broker
// restarting, a rebalance) are retried and do not fail it. It is safe for
// concurrent use.
func (b *Bridge) ConsumerCheck(context.Context) error {
	if p := b.consumeErr.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrNotAuthorized, *p)
	}
	return nil
}

// isAuthorization reports whether err says a Kafka ACL is missing.
func isAuthorization(err error) bool {
	for _, kerr := range []sarama.KError{sarama.ErrTopicAuthorizationFailed, sarama.ErrGroupAuthorizationFailed,
		sarama.ErrClusterAuthorizationFailed, sarama.ErrTransactionalIDAuthorizationFailed} {
		if errors.Is(err, kerr) {
			return true
		}
	}
	return false
}
