package eventbus

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// Config configures a [Bus]. The zero value is ready to use: synchronous
// dispatch, no hooks, enabled, no debug logging, logs discarded.
type Config struct {
	// Backend runs the handlers of each dispatch. Nil means [Sync].
	Backend Backend
	// Hooks observe dispatch; nil fields are skipped.
	Hooks Hooks
	// Logger receives debug logs of each dispatch (when Debug is set) and
	// reports of panicking hooks. Nil discards them.
	Logger *slog.Logger
	// Disabled starts the bus disabled: Dispatch drops every event (see
	// [Bus.Dispatch]). Default false: enabled.
	Disabled bool
	// Debug logs each dispatch at slog.LevelDebug and fires
	// [Hooks].Debug. Default false.
	Debug bool
}

// Message is what an envelope-level [Handler] receives for one dispatch.
// Handlers must not modify Envelope.Data or Envelope.Metadata in place:
// every handler of the dispatch shares them.
type Message struct {
	// Envelope is the event dispatched.
	Envelope contracts.Envelope
	// Tx is the transaction given to [Bus.DispatchTx]; nil for
	// [Bus.Dispatch]. Handlers that need more than Exec may type-assert
	// it, e.g. to pgx.Tx.
	Tx outbox.Execer
}

// Handler handles one dispatched event at envelope level. Its error is
// returned by Dispatch wrapped in a [*HandlerError].
type Handler func(ctx context.Context, m Message) error

// Bus dispatches events to the handlers subscribed to their type. Build one
// with [New], or use the zero value for [Config]'s defaults. A Bus is safe
// for concurrent use: subscribing, unsubscribing, dispatching and changing
// settings may all happen at once, also from inside handlers. Dispatch takes
// no lock: subscriptions are copy-on-write.
type Bus struct {
	backend Backend
	hooks   Hooks
	logger  *slog.Logger

	disabled atomic.Bool
	debug    atomic.Bool

	table atomic.Pointer[table] // immutable; nil means no subscriptions
	mu    sync.Mutex            // serialises writers of table
}

// New returns a Bus configured by cfg.
func New(cfg Config) *Bus {
	b := &Bus{backend: cfg.Backend, hooks: cfg.Hooks, logger: cfg.Logger}
	b.disabled.Store(cfg.Disabled)
	b.debug.Store(cfg.Debug)
	return b
}

// SetEnabled enables or disables dispatch; see [Bus.Dispatch]. It takes
// effect for dispatches that start after it returns.
func (b *Bus) SetEnabled(enabled bool) { b.disabled.Store(!enabled) }

// Enabled reports whether the bus dispatches events.
func (b *Bus) Enabled() bool { return !b.disabled.Load() }

// SetDebug turns debug logging of each dispatch on or off.
func (b *Bus) SetDebug(debug bool) { b.debug.Store(debug) }

// Dispatch runs every handler subscribed to env's event type (and every
// [Bus.SubscribeAll] handler) through the bus's [Backend], waits for all of
// them and returns their errors joined with errors.Join, in registration
// order, each a [*HandlerError] naming its handler (a panic is a
// HandlerError wrapping a [*PanicError]). Every handler runs even when
// others fail.
//
// An event type with no handlers is not an error: Dispatch returns nil, as
// publishing an event nobody listens to is normal. A disabled bus drops the
// event, fires [Hooks].DispatchDisabled and returns nil: disabling is an
// operator's decision, not a failure of the caller.
//
// Dispatch does not validate env; handlers that persist it (such as
// [OutboxHandler]) do. Handlers unsubscribed before their turn in a running
// dispatch are skipped. Handlers registered with [OutboxHandler] fail
// with [ErrNoTx] under Dispatch: use [Bus.DispatchTx].
func (b *Bus) Dispatch(ctx context.Context, env contracts.Envelope) error {
	return b.dispatch(ctx, Message{Envelope: env})
}

// DispatchTx is [Bus.Dispatch] inside the caller's transaction tx, usually
// a pgx.Tx: handlers find tx in [Message].Tx, and [OutboxHandler] writes
// the event in it. DispatchTx neither commits nor rolls back tx; return its
// error from the transaction function to roll back on failure. Handlers
// must not use tx concurrently with each other: with the [Concurrent]
// backend, give tx-using handlers their own bus or serialise them.
func (b *Bus) DispatchTx(ctx context.Context, tx outbox.Execer, env contracts.Envelope) error {
	return b.dispatch(ctx, Message{Envelope: env, Tx: tx})
}

func (b *Bus) dispatch(ctx context.Context, m Message) error {
	debug := b.debug.Load()
	if b.disabled.Load() {
		if b.hooks.DispatchDisabled != nil {
			b.callHook(ctx, "DispatchDisabled", b.hooks.DispatchDisabled, HookInfo{Envelope: m.Envelope})
		}
		if debug {
			b.log().DebugContext(ctx, "eventbus: dispatch disabled, event dropped",
				"eventType", m.Envelope.EventType, "eventId", m.Envelope.EventID)
		}
		return nil
	}
	var subs []*Subscription
	if t := b.table.Load(); t != nil {
		var ok bool
		if subs, ok = t.byType[m.Envelope.EventType]; !ok {
			subs = t.all
		}
	}
	if b.hooks.BeforeDispatch != nil {
		b.callHook(ctx, "BeforeDispatch", b.hooks.BeforeDispatch, HookInfo{Envelope: m.Envelope, Handlers: len(subs)})
	}
	if len(subs) == 0 && !debug {
		return nil
	}
	var start time.Time
	if debug {
		start = time.Now()
	}
	calls := Calls{bus: b, msg: m, subs: subs,
		timed: debug || b.hooks.HandlerSucceeded != nil || b.hooks.HandlerFailed != nil}
	var err error
	if len(subs) > 0 {
		if b.backend == nil {
			err = Sync{}.Run(ctx, calls)
		} else {
			err = b.backend.Run(ctx, calls)
		}
	}
	if debug {
		b.debugDispatch(ctx, m.Envelope, len(subs), time.Since(start), err)
	}
	return err
}

func (b *Bus) debugDispatch(ctx context.Context, env contracts.Envelope, n int, d time.Duration, err error) {
	attrs := []any{"eventType", env.EventType, "eventId", env.EventID, "aggregateId", env.AggregateID,
		"handlers", n, "duration", d}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	b.log().DebugContext(ctx, "eventbus: dispatched", attrs...)
	if b.hooks.Debug != nil {
		b.callHook(ctx, "Debug", b.hooks.Debug, HookInfo{Envelope: env, Handlers: n, Duration: d, Err: err})
	}
}

func (b *Bus) log() *slog.Logger {
	if b.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.logger
}

// callHook runs hook, recovering and logging a panic so that hooks can not
// break dispatch.
func (b *Bus) callHook(ctx context.Context, name string, hook func(context.Context, HookInfo), info HookInfo) {
	defer func() {
		if r := recover(); r != nil {
			b.log().ErrorContext(ctx, "eventbus: hook panicked", "hook", name, "panic", r,
				"eventType", info.Envelope.EventType, "eventId", info.Envelope.EventID, "handler", info.Handler)
		}
	}()
	hook(ctx, info)
}
