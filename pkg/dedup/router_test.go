package dedup_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
)

// The router decodes data into the handler's type and hands over the
// envelope through the context.
func TestRouterDispatch(t *testing.T) {
	t.Parallel()
	var r dedup.Router
	var got orderPlaced
	var gotEnv contracts.Envelope
	dedup.On(&r, orderPlacedEv, func(ctx context.Context, tx pgx.Tx, o orderPlaced) error {
		got = o
		gotEnv, _ = dedup.EnvelopeFrom(ctx)
		return nil
	})
	shipped := errors.New("shipped")
	dedup.On(&r, orderShippedEv, func(context.Context, pgx.Tx, orderPlaced) error { return shipped })
	if types := r.Types(); len(types) != 2 || types[0] != "shop.order.placed" || types[1] != "shop.order.shipped" {
		t.Fatalf("Types() = %v", types)
	}
	env, _ := envelope(t, orderPlacedEv, orderPlaced{OrderID: "7", Amount: 3})
	if err := r.HandleEvent(context.Background(), nil, env); err != nil {
		t.Fatal(err)
	}
	if got != (orderPlaced{OrderID: "7", Amount: 3}) || gotEnv.EventID != env.EventID {
		t.Fatalf("handler got %+v and envelope %s", got, gotEnv.EventID)
	}
	env2, _ := envelope(t, orderShippedEv, orderPlaced{})
	if err := r.HandleEvent(context.Background(), nil, env2); err != shipped {
		t.Fatalf("handler error not returned as is: %v", err)
	}
	if _, ok := dedup.EnvelopeFrom(context.Background()); ok {
		t.Fatal("EnvelopeFrom outside a handler: ok")
	}
}

// An unknown type is a permanent error wrapping contracts.ErrUnknownType,
// unless a Fallback takes it; data that does not fit is a ValidationError.
func TestRouterUnknownAndBadData(t *testing.T) {
	t.Parallel()
	var r dedup.Router
	dedup.On(&r, orderPlacedEv, func(context.Context, pgx.Tx, orderPlaced) error { return nil })
	unknown, _ := envelope(t, orderShippedEv, orderPlaced{})
	err := r.HandleEvent(context.Background(), nil, unknown)
	if !errors.Is(err, contracts.ErrUnknownType) || !dedup.IsPermanent(err) {
		t.Fatalf("unknown type: %v (permanent %v)", err, dedup.IsPermanent(err))
	}
	r.Fallback = dedup.Ignore
	if err := r.HandleEvent(context.Background(), nil, unknown); err != nil {
		t.Fatalf("with the Ignore fallback: %v", err)
	}
	bad, err := contracts.New(orderPlacedEv.Name(), "order-1", "shop-service", map[string]any{"amount": "ten"})
	if err != nil {
		t.Fatal(err)
	}
	var ve *contracts.ValidationError
	if err := r.HandleEvent(context.Background(), nil, bad); !errors.As(err, &ve) || ve.Field != "data.amount" {
		t.Fatalf("bad data: %v", err)
	}
}

// Registering a type twice is a programming error caught at start-up.
func TestRouterDuplicateRegistrationPanics(t *testing.T) {
	t.Parallel()
	var r dedup.Router
	dedup.On(&r, orderPlacedEv, func(context.Context, pgx.Tx, orderPlaced) error { return nil })
	defer func() {
		if recover() == nil {
			t.Fatal("second registration did not panic")
		}
	}()
	dedup.On(&r, orderPlacedEv, func(context.Context, pgx.Tx, orderPlaced) error { return nil })
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	base := errors.New("x")
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{base, false},
		{dedup.Permanent(base), true},
		{errors.Join(errors.New("y"), dedup.Permanent(base)), true},
		{&contracts.DecodeError{Reason: "r"}, true},
	} {
		if got := dedup.IsPermanent(tc.err); got != tc.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if dedup.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	if !errors.Is(dedup.Permanent(base), base) {
		t.Error("Permanent does not wrap")
	}
}

func TestResultString(t *testing.T) {
	t.Parallel()
	for r, want := range map[dedup.Result]string{dedup.Handled: "handled", dedup.Duplicate: "duplicate", dedup.DeadLetter: "dead-letter", 0: "Result(0)"} {
		if r.String() != want {
			t.Errorf("%d.String() = %q, want %q", r, r.String(), want)
		}
	}
}
