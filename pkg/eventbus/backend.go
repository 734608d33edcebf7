package eventbus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Backend runs the handler calls of one dispatch. [Sync] and [Concurrent]
// are the two implementations; eventbustest.TestBackend is the conformance
// suite any Backend must pass.
//
// Run must call calls.Call exactly once for every index in [0, calls.Len()),
// return only after every call has returned, and return the non-nil results
// joined with errors.Join in index order (nil when all succeed). Run is
// called concurrently by concurrent dispatches.
type Backend interface {
	Run(ctx context.Context, calls Calls) error
}

// Calls is the handler calls of one dispatch, handed to a [Backend]. It is
// a value: copy it freely, and call Call from any goroutine.
type Calls struct {
	bus   *Bus
	msg   Message
	subs  []*Subscription
	timed bool
}

// Len returns the number of handler calls.
func (c Calls) Len() int { return len(c.subs) }

// Call runs handler i (in registration order) with the bus's hooks and
// returns its error as a [*HandlerError], or nil. A panic in the handler is
// recovered and returned as a HandlerError wrapping a [*PanicError]. A
// handler unsubscribed before Call is skipped (nil, no hooks). Call is safe
// for concurrent use.
func (c Calls) Call(ctx context.Context, i int) (err error) {
	s := c.subs[i]
	if !s.active.Load() {
		return nil
	}
	if !c.timed {
		return c.call(ctx, s)
	}
	start := time.Now()
	err = c.call(ctx, s)
	c.bus.handlerDone(ctx, c.msg, s.name, time.Since(start), err)
	return err
}

func (c Calls) call(ctx context.Context, s *Subscription) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &HandlerError{Handler: s.name, Err: &PanicError{Value: r, Stack: debug.Stack()}}
		}
	}()
	if herr := s.handler(ctx, c.msg); herr != nil {
		return &HandlerError{Handler: s.name, Err: herr}
	}
	return nil
}

func (b *Bus) handlerDone(ctx context.Context, m Message, name string, d time.Duration, err error) {
	info := HookInfo{Envelope: m.Envelope, Handler: name, Duration: d, Err: err}
	if err == nil {
		if b.hooks.HandlerSucceeded != nil {
			b.callHook(ctx, "HandlerSucceeded", b.hooks.HandlerSucceeded, info)
		}
		return
	}
	if b.hooks.HandlerFailed != nil {
		b.callHook(ctx, "HandlerFailed", b.hooks.HandlerFailed, info)
	}
}

// Sync is the default [Backend]: it calls the handlers one after another,
// in registration order, on the dispatching goroutine. The zero value is
// ready to use and safe for concurrent use.
type Sync struct{}

// Run calls every handler in order and returns their errors joined.
func (Sync) Run(ctx context.Context, calls Calls) error {
	var errs []error
	for i := range calls.Len() {
		if err := calls.Call(ctx, i); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ConcurrentConfig configures a [Concurrent] backend. The zero value means
// the defaults.
type ConcurrentConfig struct {
	// Workers bounds the goroutines the backend runs handlers on, across
	// all dispatches of every bus sharing it. Zero means
	// runtime.GOMAXPROCS(0) at NewConcurrent; negative is an error.
	Workers int
}

// Concurrent is a [Backend] that runs the handlers of a dispatch in
// parallel: there is no order among them, and Dispatch returns once all
// have returned, with their errors joined in registration order.
//
// At most Workers handlers run on goroutines the backend starts, shared by
// all dispatches. When every worker is busy, the dispatching goroutine runs
// the next handler itself; so a dispatch always makes progress, a handler
// that dispatches again (nested dispatch) can not deadlock the pool, and a
// single dispatch uses at most Workers+1 goroutines. A Concurrent is safe
// for concurrent use and needs no Close.
type Concurrent struct {
	slots chan struct{}
}

// NewConcurrent returns a Concurrent backend configured by cfg, or an error
// if cfg.Workers is negative.
func NewConcurrent(cfg ConcurrentConfig) (*Concurrent, error) {
	n := cfg.Workers
	switch {
	case n < 0:
		return nil, fmt.Errorf("eventbus: ConcurrentConfig.Workers is %d, must not be negative", n)
	case n == 0:
		n = runtime.GOMAXPROCS(0)
	}
	return &Concurrent{slots: make(chan struct{}, n)}, nil
}

// Workers returns the bound on worker goroutines.
func (c *Concurrent) Workers() int { return cap(c.slots) }

// Run runs every handler, in parallel as workers allow, and returns their
// errors joined in registration order.
func (c *Concurrent) Run(ctx context.Context, calls Calls) error {
	n := calls.Len()
	if n == 1 {
		return calls.Call(ctx, 0)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		if i == n-1 { // the caller would only wait: run the last one itself
			errs[i] = calls.Call(ctx, i)
			break
		}
		select {
		case c.slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-c.slots }()
				errs[i] = calls.Call(ctx, i)
			})
		default:
			errs[i] = calls.Call(ctx, i)
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}
