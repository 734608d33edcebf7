package dedup

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// Handler handles one decoded event inside the dedup transaction tx, which
// commits together with the claim after it returns nil. An error rolls both
// back; [Permanent] errors (and any whose Permanent() reports true) make a
// [Processor] dead-letter the message, other errors make it retry.
type Handler interface {
	HandleEvent(ctx context.Context, tx pgx.Tx, env contracts.Envelope) error
}

// BatchHandler is an optional capability of a [Handler]: a [Processor]
// hands it the new events of a batch in one call, in delivery order, so that
// it can write them with one statement (a multi-row INSERT, COPY) instead
// of one each. The Processor still calls HandleEvent when it handles an
// event alone: after a batch failed, and on retries. An error from
// HandleEvents rolls the whole batch back.
type BatchHandler interface {
	Handler
	HandleEvents(ctx context.Context, tx pgx.Tx, envs []contracts.Envelope) error
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, tx pgx.Tx, env contracts.Envelope) error

// HandleEvent calls f.
func (f HandlerFunc) HandleEvent(ctx context.Context, tx pgx.Tx, env contracts.Envelope) error {
	return f(ctx, tx, env)
}

// Router is a [Handler] that dispatches each event to the typed handler
// registered for its event type with [On], decoding the event's data into
// the handler's Go type through a [contracts.Registry].
//
// The zero value is an empty router ready to use; a Router must not be
// copied after first use. Register handlers before handling events;
// registration and dispatch are safe for concurrent use.
type Router struct {
	// Fallback handles events of a type without a handler. Nil means such
	// an event fails with a permanent error wrapping
	// [contracts.ErrUnknownType], so it is dead-lettered. Set it before use;
	// [Ignore] acknowledges such events without doing anything.
	Fallback Handler

	registry contracts.Registry
	mu       sync.RWMutex
	handlers map[string]func(ctx context.Context, tx pgx.Tx, data any) error
}

// Ignore is a [Handler] that does nothing, e.g. a [Router.Fallback] for a
// consumer that reads a topic carrying more event types than it handles.
// Ignored events are still recorded as processed.
var Ignore Handler = HandlerFunc(func(context.Context, pgx.Tx, contracts.Envelope) error { return nil })

// On registers fn as r's handler for events of type ev: r decodes their
// data into an E (a [*contracts.ValidationError], permanent, when it does
// not fit) and calls fn with it. fn reads the whole envelope with
// [EnvelopeFrom]. On panics, like http.ServeMux.Handle, when ev's type
// already has a handler or ev is the zero Event, since both are programming
// errors best caught at start-up.
func On[E any](r *Router, ev contracts.Event[E], fn func(ctx context.Context, tx pgx.Tx, data E) error) {
	if fn == nil {
		panic("dedup.On: nil handler for " + ev.Name())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := contracts.RegisterEvent(&r.registry, ev); err != nil {
		panic("dedup.On: " + err.Error())
	}
	if r.handlers == nil {
		r.handlers = make(map[string]func(context.Context, pgx.Tx, any) error)
	}
	r.handlers[ev.Name()] = func(ctx context.Context, tx pgx.Tx, data any) error {
		return fn(ctx, tx, data.(E))
	}
}

// Types returns the event types that have a handler, sorted: for instance
// the routing keys to bind a queue with.
func (r *Router) Types() []string { return r.registry.Types() }

// HandleEvent dispatches env to the handler of its type, or to Fallback;
// see [Router]. It returns the handler's error as is.
func (r *Router) HandleEvent(ctx context.Context, tx pgx.Tx, env contracts.Envelope) error {
	r.mu.RLock()
	h, ok := r.handlers[env.EventType]
	r.mu.RUnlock()
	if !ok {
		if r.Fallback != nil {
			return r.Fallback.HandleEvent(ctx, tx, env)
		}
		return Permanent(fmt.Errorf("dedup: no handler for event %s: %w %q", env.EventID, contracts.ErrUnknownType, env.EventType))
	}
	data, err := r.registry.Decode(env)
	if err != nil {
		return err
	}
	return h(context.WithValue(ctx, envelopeKey{}, env), tx, data)
}

type envelopeKey struct{}

// EnvelopeFrom returns the envelope of the event that a handler registered
// with [On] is handling, for its id, aggregate id, occurredAt or
// correlation id. ok is false outside such a handler.
func EnvelopeFrom(ctx context.Context) (env contracts.Envelope, ok bool) {
	env, ok = ctx.Value(envelopeKey{}).(contracts.Envelope)
	return env, ok
}
