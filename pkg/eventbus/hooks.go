package eventbus

import (
	"context"
	"time"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// Hooks observe dispatch, e.g. for metrics or tracing. Nil fields are
// skipped. Hooks run on the goroutine of the dispatch (or, with
// [Concurrent], of the handler) they report on, so they must be safe for
// concurrent use and should be quick. A hook that panics is recovered and
// logged at slog.LevelError; dispatch carries on as if it had returned.
type Hooks struct {
	// BeforeDispatch is called once per dispatch of an enabled bus, before
	// any handler, with Envelope and Handlers set.
	BeforeDispatch func(ctx context.Context, info HookInfo)
	// HandlerSucceeded is called after each handler that returned nil,
	// with Envelope, Handler and Duration set.
	HandlerSucceeded func(ctx context.Context, info HookInfo)
	// HandlerFailed is called after each handler that returned an error or
	// panicked, with Envelope, Handler, Duration and Err (a
	// [*HandlerError]) set.
	HandlerFailed func(ctx context.Context, info HookInfo)
	// DispatchDisabled is called for each event a disabled bus drops, with
	// Envelope set.
	DispatchDisabled func(ctx context.Context, info HookInfo)
	// Debug is called after each dispatch while debug is on ([Config].Debug,
	// [Bus.SetDebug]), with Envelope, Handlers, Duration (of the whole
	// dispatch) and Err (Dispatch's result) set.
	Debug func(ctx context.Context, info HookInfo)
}

// HookInfo is what a hook learns about a dispatch. Fields a hook does not
// document are zero.
type HookInfo struct {
	// Envelope is the event dispatched.
	Envelope contracts.Envelope
	// Handler names the handler, for per-handler hooks.
	Handler string
	// Handlers is the number of handlers the dispatch runs.
	Handlers int
	// Duration is how long the handler (or the dispatch) took.
	Duration time.Duration
	// Err is the handler's (or the dispatch's) error.
	Err error
}
