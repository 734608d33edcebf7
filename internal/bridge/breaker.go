package bridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/sony/gobreaker/v2"
)

// ErrBreakerOpen is returned, wrapped, by [Bridge.Check] while the dedup
// store's circuit breaker is open or half-open: the bridge is not bridging.
var ErrBreakerOpen = errors.New("bridge: dedup store circuit breaker is not closed")

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
