package eventbus

import (
	"errors"
	"fmt"
)

// ErrNoTx is wrapped by the error of an [OutboxHandler] when the event was
// dispatched with [Bus.Dispatch] instead of [Bus.DispatchTx]: writing it
// outside the caller's transaction would break the outbox's guarantee, so
// the event is not written.
var ErrNoTx = errors.New("event dispatched without a transaction")

// HandlerError is the error of one handler, as Dispatch returns it (joined
// with the others). Use errors.As to find which handler failed.
type HandlerError struct {
	// Handler is the handler's name: the one given with [WithName], else
	// the handler function's name.
	Handler string
	// Err is what the handler returned, or a [*PanicError].
	Err error
}

// Error returns "handler <name>: <err>".
func (e *HandlerError) Error() string { return "handler " + e.Handler + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *HandlerError) Unwrap() error { return e.Err }

// PanicError reports a handler that panicked; it is wrapped in the
// handler's [*HandlerError].
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the handler goroutine's stack at the panic.
	Stack []byte
}

// Error returns "panic: <value>".
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns Value when it is an error, so errors.Is and errors.As see
// through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
