package eventbus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync/atomic"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// Subscription is one registered handler. It is safe for concurrent use.
type Subscription struct {
	bus       *Bus
	eventType string // "" for SubscribeAll
	name      string
	handler   Handler
	active    atomic.Bool
}

// Name returns the handler's name, as hooks and errors report it.
func (s *Subscription) Name() string { return s.name }

// Unsubscribe removes the handler: dispatches that start afterwards do not
// call it, nor do running dispatches that have not reached it yet; a call
// already running finishes. It is idempotent and safe to call from anywhere,
// including from inside a handler of the same bus.
func (s *Subscription) Unsubscribe() {
	if !s.active.CompareAndSwap(true, false) {
		return
	}
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.table.Load()
	subs := make([]*Subscription, 0, len(old.subs))
	for _, o := range old.subs {
		if o != s {
			subs = append(subs, o)
		}
	}
	b.table.Store(newTable(subs))
}

// SubscribeOption configures a subscription.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct{ name string }

// WithName names the handler in hooks, logs and errors. Without it the
// name is the handler function's, as runtime.FuncForPC reports it (e.g.
// "example.com/svc.sendWelcome", or "...func1" for a closure).
func WithName(name string) SubscribeOption {
	return func(o *subscribeOptions) { o.name = name }
}

// Subscribe registers h for events of type ev: h receives the data of each
// dispatched envelope decoded as an E. A decode failure is h's error (a
// [*HandlerError] wrapping the [*contracts.ValidationError]); h is then not
// called. It returns an error, registering nothing, if ev is the zero Event
// or h is nil. It is safe for concurrent use.
func Subscribe[E any](b *Bus, ev contracts.Event[E], h func(ctx context.Context, data E) error, opts ...SubscribeOption) (*Subscription, error) {
	if err := checkTyped(ev.Name(), h == nil); err != nil {
		return nil, err
	}
	return b.subscribe(ev.Name(), funcName(h), func(ctx context.Context, m Message) error {
		data, err := ev.Decode(m.Envelope)
		if err != nil {
			return fmt.Errorf("decode %s: %w", ev.Name(), err)
		}
		return h(ctx, data)
	}, opts)
}

// SubscribeMessage is [Subscribe] for handlers that also need the
// [Message]: the envelope's id, aggregate or metadata, or the transaction
// of [Bus.DispatchTx].
func SubscribeMessage[E any](b *Bus, ev contracts.Event[E], h func(ctx context.Context, m Message, data E) error, opts ...SubscribeOption) (*Subscription, error) {
	if err := checkTyped(ev.Name(), h == nil); err != nil {
		return nil, err
	}
	return b.subscribe(ev.Name(), funcName(h), func(ctx context.Context, m Message) error {
		data, err := ev.Decode(m.Envelope)
		if err != nil {
			return fmt.Errorf("decode %s: %w", ev.Name(), err)
		}
		return h(ctx, m, data)
	}, opts)
}

// SubscribeEnvelope registers an envelope-level handler for eventType, which
// must match [contracts.EventTypePattern]: h gets the envelope undecoded,
// which is the cheapest way to dispatch. It returns an error, registering
// nothing, for a bad eventType or a nil h. It is safe for concurrent use.
func (b *Bus) SubscribeEnvelope(eventType string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	if _, err := contracts.NewEvent[struct{}](eventType); err != nil {
		return nil, fmt.Errorf("eventbus: subscribe: %w", err)
	}
	if h == nil {
		return nil, errors.New("eventbus: subscribe: nil handler")
	}
	return b.subscribe(eventType, funcName(h), h, opts)
}

// SubscribeAll registers h for every event type, e.g. [OutboxHandler] or an
// audit log. It runs among a type's handlers in registration order. It
// returns an error, registering nothing, if h is nil. It is safe for
// concurrent use.
func (b *Bus) SubscribeAll(h Handler, opts ...SubscribeOption) (*Subscription, error) {
	if h == nil {
		return nil, errors.New("eventbus: subscribe: nil handler")
	}
	return b.subscribe("", funcName(h), h, opts)
}

func checkTyped(name string, nilHandler bool) error {
	if name == "" {
		return errors.New("eventbus: subscribe: zero contracts.Event (use contracts.Define)")
	}
	if nilHandler {
		return errors.New("eventbus: subscribe: nil handler")
	}
	return nil
}

func (b *Bus) subscribe(eventType, defaultName string, h Handler, opts []SubscribeOption) (*Subscription, error) {
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.name == "" {
		o.name = defaultName
	}
	s := &Subscription{bus: b, eventType: eventType, name: o.name, handler: h}
	s.active.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	var subs []*Subscription
	if old := b.table.Load(); old != nil {
		subs = append(subs, old.subs...)
	}
	b.table.Store(newTable(append(subs, s)))
	return s, nil
}

// funcName names a handler function for hooks and errors.
func funcName(f any) string {
	if fn := runtime.FuncForPC(reflect.ValueOf(f).Pointer()); fn != nil {
		return fn.Name()
	}
	return "handler"
}

// table is an immutable snapshot of the subscriptions, replaced as a whole
// on every change so that Dispatch reads it without a lock.
type table struct {
	subs   []*Subscription            // all, in registration order
	all    []*Subscription            // SubscribeAll handlers, in order
	byType map[string][]*Subscription // a type's handlers merged with all, in order
}

func newTable(subs []*Subscription) *table {
	t := &table{subs: subs, byType: make(map[string][]*Subscription)}
	for _, s := range subs {
		if s.eventType == "" {
			t.all = append(t.all, s)
		} else if _, ok := t.byType[s.eventType]; !ok {
			t.byType[s.eventType] = nil
		}
	}
	for typ := range t.byType {
		var list []*Subscription
		for _, s := range subs {
			if s.eventType == "" || s.eventType == typ {
				list = append(list, s)
			}
		}
		t.byType[typ] = list
	}
	return t
}
