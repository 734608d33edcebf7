// Package eventbustest is the conformance suite of eventbus.Backend
// implementations: every Backend, eventbus.Sync and eventbus.Concurrent
// included, must pass [TestBackend].
package eventbustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/eventbus"
)

// Data is the data of the suite's test events.
type Data struct {
	N int `json:"n"`
}

var (
	happened = contracts.Define[Data]("test.thing.happened")
	other    = contracts.Define[Data]("test.thing.other")
)

// waitLimit bounds every wait of the suite, so that a broken backend fails
// instead of hanging.
const waitLimit = 10 * time.Second

// TestBackend runs the conformance suite against the backends newBackend
// returns (one per subtest). It checks the contract of eventbus.Backend as
// Bus.Dispatch relies on it: every handler called once, errors joined in
// registration order and named, panics recovered, Dispatch returning only
// after every handler, per-handler hooks, unsubscribing during dispatch,
// nested dispatch and concurrent use (run it with -race).
func TestBackend(t *testing.T, newBackend func(t *testing.T) eventbus.Backend) {
	tests := []struct {
		name string
		test func(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus)
	}{
		{"EveryHandlerOnce", testEveryHandlerOnce},
		{"NoHandlers", testNoHandlers},
		{"ErrorsJoinedAndNamed", testErrorsJoined},
		{"PanicBecomesError", testPanic},
		{"WaitsForAllHandlers", testWaits},
		{"TypedDecode", testTypedDecode},
		{"HandlerHooks", testHandlerHooks},
		{"UnsubscribeDuringDispatch", testUnsubscribeDuringDispatch},
		{"NestedDispatch", testNestedDispatch},
		{"ConcurrentUse", testConcurrentUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, func(cfg eventbus.Config) *eventbus.Bus {
				cfg.Backend = newBackend(t)
				return eventbus.New(cfg)
			})
		})
	}
}

// Envelope returns a valid envelope of type "test.thing.happened" with
// data {"n":n}.
func Envelope(t testing.TB, n int) contracts.Envelope {
	t.Helper()
	return envelope(t, happened, n)
}

func envelope(t testing.TB, ev contracts.Event[Data], n int) contracts.Envelope {
	t.Helper()
	env, err := ev.New("thing-1", "test-service", Data{N: n})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func subscribe(t *testing.T, b *eventbus.Bus, eventType string, h eventbus.Handler, opts ...eventbus.SubscribeOption) *eventbus.Subscription {
	t.Helper()
	s, err := b.SubscribeEnvelope(eventType, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dispatch runs b.Dispatch with a deadline, failing the test if it hangs.
func dispatch(t *testing.T, b *eventbus.Bus, env contracts.Envelope) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- b.Dispatch(context.Background(), env) }()
	select {
	case err := <-done:
		return err
	case <-time.After(waitLimit):
		t.Fatalf("Dispatch did not return within %s", waitLimit)
		return nil
	}
}

// Pins: each handler of the type runs exactly once per dispatch, other
// types' handlers do not, SubscribeAll handlers run for every type.
func testEveryHandlerOnce(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus) {
	b := newBus(eventbus.Config{})
	var calls [6]atomic.Int32
	for i := range 4 {
		subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error { calls[i].Add(1); return nil })
	}
	subscribe(t, b, other.Name(), func(context.Context, eventbus.Message) error { calls[4].Add(1); return nil })
	if _, err := b.SubscribeAll(func(context.Context, eventbus.Message) error { calls[5].Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := dispatch(t, b, Envelope(t, 1)); err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	want := [6]int32{1, 1, 1, 1, 0, 1}
	for i := range calls {
		if got := calls[i].Load(); got != want[i] {
			t.Errorf("handler %d called %d times, want %d", i, got, want[i])
		}
	}
	if err := dispatch(t, b, envelope(t, contracts.Define[Data]("test.thing.unknown"), 1)); err != nil {
		t.Fatalf("Dispatch of a type with only SubscribeAll handlers: %v", err)
	}
	if got := calls[5].Load(); got != 2 {
		t.Errorf("SubscribeAll handler called %d times after an unknown type, want 2", got)
	}
}

// Pins: an event type nobody subscribed to is not an error.
func testNoHandlers(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus) {
	b := newBus(eventbus.Config{})
	subscribe(t, b, other.Name(), func(context.Context, eventbus.Message) error { return errors.New("must not run") })
	if err := dispatch(t, b, Envelope(t, 1)); err != nil {
		t.Fatalf("Dispatch with no handlers = %v, want nil", err)
	}
}

// Pins: every handler runs despite failures; the errors come back joined,
// in registration order, each a *HandlerError with the handler's name.
func testErrorsJoined(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus) {
	b := newBus(eventbus.Config{})
	errA, errB := errors.New("a failed"), errors.New("b failed")
	var ran atomic.Int32
	handlers := []struct {
		name string
		err  error
	}{{"ok-1", nil}, {"fail-a", errA}, {"ok-2", nil}, {"fail-b", errB}}
	for _, h := range handlers {
		subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error { ran.Add(1); return h.err },
			eventbus.WithName(h.name))
	}
	err := dispatch(t, b, Envelope(t, 1))
	if got := ran.Load(); got != 4 {
		t.Errorf("%d handlers ran, want 4", got)
	}
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Fatalf("Dispatch = %v, want both handler errors", err)
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Dispatch error %T is not joined", err)
	}
	var names []string
	for _, e := range joined.Unwrap() {
		var he *eventbus.HandlerError
		if !errors.As(e, &he) {
			t.Fatalf("joined error %v is not a *HandlerError", e)
		}
		names = append(names, he.Handler)
	}
	if want := []string{"fail-a", "fail-b"}; !slices.Equal(names, want) {
		t.Errorf("failed handlers %v, want %v in registration order", names, want)
	}
	if !strings.Contains(err.Error(), "fail-a") || !strings.Contains(err.Error(), "a failed") {
		t.Errorf("error text %q does not name the handler and its error", err)
	}
}

// Pins: a panicking handler becomes an error naming it, and does not stop
// the others or the caller.
func testPanic(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus) {
	b := newBus(eventbus.Config{})
	var after atomic.Bool
	subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error { panic("boom") }, eventbus.WithName("panicker"))
	subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error { after.Store(true); return nil })
	err := dispatch(t, b, Envelope(t, 1))
	var he *eventbus.HandlerError
	var pe *eventbus.PanicError
	if !errors.As(err, &he) || !errors.As(err, &pe) {
		t.Fatalf("Dispatch = %v, want a *HandlerError wrapping a *PanicError", err)
	}
	if he.Handler != "panicker" || pe.Value != "boom" || len(pe.Stack) == 0 {
		t.Errorf("got handler %q, panic value %v, stack %d bytes; want panicker, boom, a stack", he.Handler, pe.Value, len(pe.Stack))
	}
	if !strings.Contains(err.Error(), "panicker") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("error text %q does not name the handler and the panic", err)
	}
	if !after.Load() {
		t.Error("the handler after the panicking one did not run")
	}
}

// Pins: Dispatch returns only after every handler has returned.
func testWaits(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus) {
	b := newBus(eventbus.Config{})
	const n = 8
	var finished atomic.Int32
	for range n {
		subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error {
			for range 1000 { // some work, so that an early return shows
				_ = fmt.Sprint(0)
			}
			finished.Add(1)
			return nil
		})
	}
	for i := range 20 {
		finished.Store(0)
		if err := dispatch(t, b, Envelope(t, i)); err != nil {
			t.Fatal(err)
		}
		if got := finished.Load(); got != n {
			t.Fatalf("dispatch %d returned with %d of %d handlers finished", i, got, n)
		}
	}
}

// Pins: typed handlers get the decoded data and the message; bad data is
// the handler's error.
func testTypedDecode(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus) {
	b := newBus(eventbus.Config{})
	var got atomic.Int64
	var gotID atomic.Value
	if _, err := eventbus.Subscribe(b, happened, func(_ context.Context, d Data) error { got.Add(int64(d.N)); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := eventbus.SubscribeMessage(b, happened, func(_ context.Context, m eventbus.Message, d Data) error {
		gotID.Store(m.Envelope.EventID)
		got.Add(int64(d.N))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	env := Envelope(t, 21)
	if err := dispatch(t, b, env); err != nil {
		t.Fatal(err)
	}
	if got.Load() != 42 || gotID.Load() != env.EventID {
		t.Errorf("handlers saw sum %d and id %v, want 42 and %v", got.Load(), gotID.Load(), env.EventID)
	}
	bad := env
	bad.Data = []byte(`{"n":"not a number"}`)
	err := dispatch(t, b, bad)
	var ve *contracts.ValidationError
	var he *eventbus.HandlerError
	if !errors.As(err, &ve) || !errors.As(err, &he) || ve.Field != "data.n" {
		t.Errorf("Dispatch of bad data = %v, want a *HandlerError wrapping a ValidationError of data.n", err)
	}
}

// Pins: success and failure hooks fire once per handler with its name,
// a duration and (for failures) the handler's error.
func testHandlerHooks(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus) {
	var mu sync.Mutex
	var ok, failed []eventbus.HookInfo
	b := newBus(eventbus.Config{Hooks: eventbus.Hooks{
		HandlerSucceeded: func(_ context.Context, i eventbus.HookInfo) { mu.Lock(); ok = append(ok, i); mu.Unlock() },
		HandlerFailed:    func(_ context.Context, i eventbus.HookInfo) { mu.Lock(); failed = append(failed, i); mu.Unlock() },
	}})
	errX := errors.New("x")
	subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error { return nil }, eventbus.WithName("good"))
	subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error { return errX }, eventbus.WithName("bad"))
	subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error { panic(errX) }, eventbus.WithName("panics"))
	env := Envelope(t, 1)
	if err := dispatch(t, b, env); !errors.Is(err, errX) {
		t.Fatalf("Dispatch = %v, want errX", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ok) != 1 || ok[0].Handler != "good" || ok[0].Envelope.EventID != env.EventID || ok[0].Err != nil || ok[0].Duration < 0 {
		t.Errorf("HandlerSucceeded calls = %+v, want one for handler good", ok)
	}
	var names []string
	for _, f := range failed {
		names = append(names, f.Handler)
		if !errors.Is(f.Err, errX) || f.Envelope.EventID != env.EventID {
			t.Errorf("HandlerFailed for %s: err %v, event %v; want errX and %v", f.Handler, f.Err, f.Envelope.EventID, env.EventID)
		}
	}
	slices.Sort(names)
	if want := []string{"bad", "panics"}; !slices.Equal(names, want) {
		t.Errorf("HandlerFailed handlers = %v, want %v", names, want)
	}
}

// Pins: a handler may unsubscribe itself and others while a dispatch is
// running, and later dispatches do not call them.
func testUnsubscribeDuringDispatch(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus) {
	b := newBus(eventbus.Config{})
	var selfCalls, otherCalls, stableCalls atomic.Int32
	var self, victim *eventbus.Subscription
	self = subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error {
		selfCalls.Add(1)
		self.Unsubscribe()
		victim.Unsubscribe()
		victim.Unsubscribe() // idempotent
		return nil
	})
	victim = subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error { otherCalls.Add(1); return nil })
	subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error { stableCalls.Add(1); return nil })
	for i := range 3 {
		if err := dispatch(t, b, Envelope(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	if selfCalls.Load() != 1 || otherCalls.Load() > 1 || stableCalls.Load() != 3 {
		t.Errorf("calls: self %d (want 1), unsubscribed other %d (want at most 1, from the first dispatch), stable %d (want 3)",
			selfCalls.Load(), otherCalls.Load(), stableCalls.Load())
	}
}

// Pins: a handler can dispatch on its own bus without deadlock, even when
// every worker is busy.
func testNestedDispatch(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus) {
	b := newBus(eventbus.Config{})
	var inner atomic.Int32
	for range 4 {
		subscribe(t, b, other.Name(), func(context.Context, eventbus.Message) error { inner.Add(1); return nil })
	}
	for range 4 {
		subscribe(t, b, happened.Name(), func(ctx context.Context, m eventbus.Message) error {
			env := m.Envelope
			env.EventType = other.Name()
			return b.Dispatch(ctx, env)
		})
	}
	if err := dispatch(t, b, Envelope(t, 1)); err != nil {
		t.Fatal(err)
	}
	if got := inner.Load(); got != 16 {
		t.Errorf("nested handlers ran %d times, want 16", got)
	}
}

// Pins: dispatching, subscribing and unsubscribing from many goroutines at
// once is safe (under -race) and loses no call of a stable handler.
func testConcurrentUse(t *testing.T, newBus func(eventbus.Config) *eventbus.Bus) {
	b := newBus(eventbus.Config{})
	var stable atomic.Int32
	subscribe(t, b, happened.Name(), func(context.Context, eventbus.Message) error { stable.Add(1); return nil })
	const dispatchers, perDispatcher = 4, 50
	env := Envelope(t, 1)
	var wg sync.WaitGroup
	errs := make(chan error, dispatchers*perDispatcher+4)
	for range dispatchers {
		wg.Go(func() {
			for range perDispatcher {
				if err := b.Dispatch(context.Background(), env); err != nil {
					errs <- err
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range perDispatcher {
				s, err := b.SubscribeEnvelope(happened.Name(), func(context.Context, eventbus.Message) error { return nil })
				if err != nil {
					errs <- err
					return
				}
				s.Unsubscribe()
			}
		})
	}
	waitGroup(t, &wg)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := stable.Load(); got != dispatchers*perDispatcher {
		t.Errorf("stable handler ran %d times, want %d", got, dispatchers*perDispatcher)
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("goroutines did not finish within %s", waitLimit)
	}
}
