package bookkeeper_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
)

const envelope = `{"eventId":"9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59","eventType":"orders.order.created",
	"aggregateId":"order-7","occurredAt":"2026-11-26T10:00:00Z","source":"orders","data":{}}`

// TestEventFromBody pins where the event id comes from when headers do not
// say: a valid envelope, or any JSON object with a UUID eventId (a record
// dead-lettered at VALIDATE still flags its outbox row); nothing else.
func TestEventFromBody(t *testing.T) {
	want := uuid.MustParse("9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59")
	tests := []struct {
		name     string
		body     string
		wantID   bool
		wantType string
	}{
		{"envelope", envelope, true, "orders.order.created"},
		{"snake case", `{"event_id":"9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59","event_type":"x"}`, true, "x"},
		{"invalid envelope", `{"eventId":"9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59","eventType":"Bad Type"}`, true, "Bad Type"},
		{"id not a uuid", `{"eventId":"abc","eventType":"orders.order.created"}`, false, "orders.order.created"},
		{"id a number", `{"eventId":5}`, false, ""},
		{"nil uuid", `{"eventId":"00000000-0000-0000-0000-000000000000"}`, false, ""},
		{"array", `[1,2]`, false, ""},
		{"binary", "\x00\x01\xff", false, ""},
		{"broken json", `{"eventId":"9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59"`, false, ""},
		{"empty", ``, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, typ := bookkeeper.EventFromBody([]byte(tc.body))
			if (id == want) != tc.wantID || (!tc.wantID && id != uuid.Nil) || typ != tc.wantType {
				t.Fatalf("EventFromBody = %v %q, want id %v, type %q", id, typ, tc.wantID, tc.wantType)
			}
		})
	}
	huge := []byte(`{"eventId":"9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59","pad":"` + strings.Repeat("x", 17<<20) + `"}`)
	if id, _ := bookkeeper.EventFromBody(huge); id != uuid.Nil {
		t.Fatal("EventFromBody read a body over the decoder's limit")
	}
}

func TestEventID(t *testing.T) {
	for s, ok := range map[string]bool{
		"9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59":          true,
		"9B2C1F6E-6A43-4A8E-9D5E-0F1D2C3B4A59":          true,
		"{9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59}":        false,
		"urn:uuid:9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59": false,
		"9b2c1f6e6a434a8e9d5e0f1d2c3b4a59":              false,
		"00000000-0000-0000-0000-000000000000":          false,
		"":                                              false,
	} {
		if _, got := bookkeeper.EventID(s); got != ok {
			t.Errorf("EventID(%q) ok = %v, want %v", s, got, ok)
		}
	}
}

func TestReasonLabel(t *testing.T) {
	for in, want := range map[string]string{
		"rejected": "rejected", "delivery_limit": "delivery_limit", "VALIDATE": "VALIDATE",
		"VALUE_CONVERTER": "VALUE_CONVERTER", "unparseable": "unparseable", "x-hostile-123": "other", "": "other",
	} {
		if got := bookkeeper.ReasonLabel(in); got != want {
			t.Errorf("ReasonLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

type runnerFunc func(ctx context.Context) error

func (f runnerFunc) Run(ctx context.Context) error { return f(ctx) }

// TestRunAll pins the lifecycle of the two sources: both run until ctx
// ends (nil), and one failing stops the other and is returned.
func TestRunAll(t *testing.T) {
	waitCtx := runnerFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := bookkeeper.RunAll(ctx, waitCtx, waitCtx); err != nil {
		t.Fatalf("RunAll after ctx ended = %v, want nil", err)
	}
	boom := errors.New("boom")
	done := make(chan error, 1)
	go func() {
		done <- bookkeeper.RunAll(context.Background(), waitCtx, runnerFunc(func(context.Context) error { return boom }))
	}()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("RunAll = %v, want boom", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunAll did not stop the other runner after a failure")
	}
}
