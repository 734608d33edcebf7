package eventbus_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/eventbus"
	"github.com/firstunicorn/messagekit-go/pkg/eventbus/eventbustest"
)

// Pins: BeforeDispatch fires once per dispatch, before any handler, with
// the handler count; also for a type with no handlers.
func TestBeforeDispatchHook(t *testing.T) {
	var log []string
	b := eventbus.New(eventbus.Config{Hooks: eventbus.Hooks{
		BeforeDispatch: func(_ context.Context, i eventbus.HookInfo) {
			log = append(log, "before:"+i.Envelope.EventType+":"+string(rune('0'+i.Handlers)))
		},
	}})
	mustSubscribe(t, b, "h1", func(context.Context, eventbus.Message) error { log = append(log, "h1"); return nil })
	mustSubscribe(t, b, "h2", func(context.Context, eventbus.Message) error { log = append(log, "h2"); return nil })
	env := eventbustest.Envelope(t, 1)
	if err := b.Dispatch(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	env.EventType = "test.thing.unheard"
	if err := b.Dispatch(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	want := "before:test.thing.happened:2 h1 h2 before:test.thing.unheard:0"
	if got := strings.Join(log, " "); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Pins: a disabled bus calls no handler, fires DispatchDisabled, returns
// nil; SetEnabled turns it back on.
func TestDisabled(t *testing.T) {
	var disabled []eventbus.HookInfo
	var before, calls int
	b := eventbus.New(eventbus.Config{Disabled: true, Hooks: eventbus.Hooks{
		DispatchDisabled: func(_ context.Context, i eventbus.HookInfo) { disabled = append(disabled, i) },
		BeforeDispatch:   func(context.Context, eventbus.HookInfo) { before++ },
	}})
	mustSubscribe(t, b, "h", func(context.Context, eventbus.Message) error { calls++; return errors.New("x") })
	env := eventbustest.Envelope(t, 1)
	if b.Enabled() {
		t.Fatal("Enabled() = true for Config.Disabled")
	}
	if err := b.Dispatch(context.Background(), env); err != nil {
		t.Fatalf("disabled Dispatch = %v, want nil", err)
	}
	if calls != 0 || before != 0 || len(disabled) != 1 || disabled[0].Envelope.EventID != env.EventID {
		t.Fatalf("disabled: %d handler calls, %d BeforeDispatch, DispatchDisabled %+v; want 0, 0, one for the event", calls, before, disabled)
	}
	b.SetEnabled(true)
	if err := b.Dispatch(context.Background(), env); err == nil || calls != 1 || len(disabled) != 1 {
		t.Errorf("re-enabled: err %v, %d calls, %d disabled hooks; want the handler's error, 1, 1", err, calls, len(disabled))
	}
}

// Pins: Debug logs each dispatch at debug level (type, id, handlers, error)
// and fires the Debug hook with the dispatch's duration and result; off, it
// does neither.
func TestDebug(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var infos []eventbus.HookInfo
	errX := errors.New("x failed")
	b := eventbus.New(eventbus.Config{Debug: true, Logger: logger, Hooks: eventbus.Hooks{
		Debug: func(_ context.Context, i eventbus.HookInfo) { infos = append(infos, i) },
	}})
	mustSubscribe(t, b, "x", func(context.Context, eventbus.Message) error { return errX })
	env := eventbustest.Envelope(t, 1)
	if err := b.Dispatch(context.Background(), env); !errors.Is(err, errX) {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"level=DEBUG", "eventbus: dispatched", "eventType=test.thing.happened",
		"eventId=" + env.EventID.String(), "handlers=1", "x failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("debug log %q lacks %q", out, want)
		}
	}
	if len(infos) != 1 || infos[0].Handlers != 1 || !errors.Is(infos[0].Err, errX) || infos[0].Duration <= 0 {
		t.Errorf("Debug hook calls %+v, want one with 1 handler, errX and a duration", infos)
	}

	b.SetDebug(false)
	buf.Reset()
	_ = b.Dispatch(context.Background(), env)
	if buf.Len() != 0 || len(infos) != 1 {
		t.Errorf("debug off: logged %q, %d hook calls; want nothing new", buf.String(), len(infos))
	}

	b.SetDebug(true)
	b.SetEnabled(false)
	_ = b.Dispatch(context.Background(), env)
	if !strings.Contains(buf.String(), "dispatch disabled") {
		t.Errorf("debug on a disabled bus logged %q, want the drop", buf.String())
	}
}

// Pins: a panicking hook, whichever it is, never breaks dispatch: handlers
// still run, Dispatch returns their result, and the panic is logged.
func TestPanickingHooks(t *testing.T) {
	boom := func(context.Context, eventbus.HookInfo) { panic("hook boom") }
	tests := []struct {
		name     string
		hooks    eventbus.Hooks
		disabled bool
		fail     bool
	}{
		{"BeforeDispatch", eventbus.Hooks{BeforeDispatch: boom}, false, false},
		{"HandlerSucceeded", eventbus.Hooks{HandlerSucceeded: boom}, false, false},
		{"HandlerFailed", eventbus.Hooks{HandlerFailed: boom}, false, true},
		{"DispatchDisabled", eventbus.Hooks{DispatchDisabled: boom}, true, false},
		{"Debug", eventbus.Hooks{Debug: boom}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var buf bytes.Buffer
			logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
			b := eventbus.New(eventbus.Config{Hooks: tt.hooks, Logger: logger, Debug: tt.name == "Debug", Disabled: tt.disabled})
			errX := errors.New("handler failed")
			calls := 0
			mustSubscribe(t, b, "h", func(context.Context, eventbus.Message) error {
				calls++
				if tt.fail {
					return errX
				}
				return nil
			})
			err := b.Dispatch(context.Background(), eventbustest.Envelope(t, 1))
			if tt.fail != errors.Is(err, errX) || (err != nil && !tt.fail) {
				t.Errorf("Dispatch = %v, want the handler's own result", err)
			}
			if wantCalls := map[bool]int{true: 0, false: 1}[tt.disabled]; calls != wantCalls {
				t.Errorf("handler ran %d times, want %d", calls, wantCalls)
			}
			mu.Lock()
			defer mu.Unlock()
			if out := buf.String(); !strings.Contains(out, "hook panicked") || !strings.Contains(out, "hook="+tt.name) ||
				!strings.Contains(out, "hook boom") {
				t.Errorf("log %q does not report the %s panic", out, tt.name)
			}
		})
	}
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func namedHandler(context.Context, eventbus.Message) error { return nil }

func namedTyped(context.Context, eventbustest.Data) error { return nil }

// Pins: handler names come from WithName, else from the function.
func TestHandlerNames(t *testing.T) {
	b := eventbus.New(eventbus.Config{})
	ev := contracts.Define[eventbustest.Data]("test.thing.happened")
	derived, err := b.SubscribeEnvelope(ev.Name(), namedHandler)
	if err != nil {
		t.Fatal(err)
	}
	typed, err := eventbus.Subscribe(b, ev, namedTyped)
	if err != nil {
		t.Fatal(err)
	}
	given, err := b.SubscribeAll(namedHandler, eventbus.WithName("audit"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ got, want string }{
		{derived.Name(), "github.com/firstunicorn/messagekit-go/pkg/eventbus_test.namedHandler"},
		{typed.Name(), "github.com/firstunicorn/messagekit-go/pkg/eventbus_test.namedTyped"},
		{given.Name(), "audit"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("name %q, want %q", tt.got, tt.want)
		}
	}
}

// Pins: subscribing with a bad event or a nil handler fails and registers
// nothing.
func TestSubscribeErrors(t *testing.T) {
	b := eventbus.New(eventbus.Config{Hooks: eventbus.Hooks{
		BeforeDispatch: func(_ context.Context, i eventbus.HookInfo) {
			if i.Handlers != 0 {
				t.Errorf("a failed subscription registered a handler (%d)", i.Handlers)
			}
		},
	}})
	ok := func(context.Context, eventbus.Message) error { return nil }
	tests := []struct {
		name string
		sub  func() (*eventbus.Subscription, error)
	}{
		{"zero typed event", func() (*eventbus.Subscription, error) {
			return eventbus.Subscribe(b, contracts.Event[eventbustest.Data]{}, namedTyped)
		}},
		{"nil typed handler", func() (*eventbus.Subscription, error) {
			return eventbus.Subscribe[eventbustest.Data](b, contracts.Define[eventbustest.Data]("test.thing.happened"), nil)
		}},
		{"zero event SubscribeMessage", func() (*eventbus.Subscription, error) {
			return eventbus.SubscribeMessage(b, contracts.Event[eventbustest.Data]{},
				func(context.Context, eventbus.Message, eventbustest.Data) error { return nil })
		}},
		{"bad event type", func() (*eventbus.Subscription, error) { return b.SubscribeEnvelope("UserCreated", ok) }},
		{"nil envelope handler", func() (*eventbus.Subscription, error) { return b.SubscribeEnvelope("test.thing.happened", nil) }},
		{"nil SubscribeAll handler", func() (*eventbus.Subscription, error) { return b.SubscribeAll(nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.sub()
			if err == nil || s != nil {
				t.Fatalf("got %v, %v; want an error", s, err)
			}
			if !strings.HasPrefix(err.Error(), "eventbus: subscribe") {
				t.Errorf("error %q lacks context", err)
			}
		})
	}
	if err := b.Dispatch(context.Background(), eventbustest.Envelope(t, 1)); err != nil {
		t.Fatal(err)
	}
}

// Pins: the zero Bus works with the defaults.
func TestZeroBus(t *testing.T) {
	var b eventbus.Bus
	called := false
	if _, err := b.SubscribeAll(func(context.Context, eventbus.Message) error { called = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Dispatch(context.Background(), eventbustest.Envelope(t, 1)); err != nil || !called || !b.Enabled() {
		t.Errorf("zero Bus: err %v, called %v, enabled %v", err, called, b.Enabled())
	}
}
