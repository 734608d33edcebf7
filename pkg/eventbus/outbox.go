package eventbus

import (
	"context"
	"fmt"

	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// OutboxHandler returns a [Handler] that writes each event dispatched with
// [Bus.DispatchTx] to the outbox with w.Add in that transaction, so that
// the event commits or rolls back with the caller's business writes.
// Register it with [Bus.SubscribeAll] to put every event in the outbox, or
// with [Bus.SubscribeEnvelope] for chosen types. A nil w means the zero
// [outbox.Writer].
//
// Under [Bus.Dispatch] (no transaction) it writes nothing and fails with an
// error wrapping [ErrNoTx]. Errors of w.Add are returned as they are (see
// [outbox.Writer.Add]: an invalid envelope leaves the transaction usable, a
// database error aborts it).
func OutboxHandler(w *outbox.Writer) Handler {
	if w == nil {
		w = &outbox.Writer{}
	}
	return func(ctx context.Context, m Message) error {
		if m.Tx == nil {
			return fmt.Errorf("outbox: event %s (%s): %w", m.Envelope.EventID, m.Envelope.EventType, ErrNoTx)
		}
		return w.Add(ctx, m.Tx, m.Envelope)
	}
}
