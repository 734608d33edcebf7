// Package eventbus is an optional in-process event bus: handlers subscribe
// per event type, and [Bus.Dispatch] runs them for an event, through a
// pluggable [Backend]. It is the Go counterpart of the Python messagekit's
// EventBus, without a framework.
//
// # Subscribing
//
// The unit dispatched is a [contracts.Envelope], the event as it travels.
// [Subscribe] registers a typed handler that receives the decoded data of a
// [contracts.Event]; [SubscribeMessage] also hands it the [Message] (the
// envelope and the transaction, when there is one); [Bus.SubscribeEnvelope]
// and [Bus.SubscribeAll] register envelope-level [Handler]s, for one event
// type or for every event. A type may have any number of handlers; each
// subscription returns a [*Subscription] whose Unsubscribe is safe at any
// time, including from inside a running handler.
//
// # Dispatching
//
// [Bus.Dispatch] runs every handler of the event's type and returns their
// errors joined with errors.Join, each a [*HandlerError] naming its handler;
// a handler that panics yields a HandlerError wrapping a [*PanicError].
// Handlers run through the bus's [Backend]: [Sync] (the default) calls them
// in registration order on the caller's goroutine; [Concurrent] runs them in
// parallel on a bounded number of goroutines. Both wait for every handler.
//
// # Transactions and the outbox
//
// [Bus.DispatchTx] is Dispatch inside the caller's transaction: handlers find
// it in [Message].Tx. Registering [OutboxHandler] (usually with
// SubscribeAll) makes every event dispatched with DispatchTx be written to
// the outbox with [outbox.Writer.Add] in that transaction, so the event
// commits or rolls back with the business writes. The transaction is an
// explicit argument, never a context value or a global.
//
// # Hooks and settings
//
// [Hooks] observe dispatch: before dispatch, handler success and failure
// (with the handler's name and duration), dispatch disabled, and a debug
// summary. A panicking hook is recovered and logged; it never breaks
// dispatch. [Config].Disabled (or [Bus.SetEnabled]) makes the bus drop
// events; [Config].Debug (or [Bus.SetDebug]) logs each dispatch at
// slog.LevelDebug.
package eventbus
