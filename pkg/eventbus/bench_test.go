package eventbus_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/firstunicorn/messagekit-go/pkg/eventbus"
	"github.com/firstunicorn/messagekit-go/pkg/eventbus/eventbustest"
)

func nop(context.Context, eventbus.Message) error { return nil }

// BenchmarkDispatchSync measures the bus's own overhead per handler call:
// the default synchronous backend, no hooks, envelope-level handlers that do
// nothing (no decoding). ns/op is per handler call: b.N calls are made as
// b.N/handlers dispatches. Target: ≤ 200 ns and 0 allocs.
func BenchmarkDispatchSync(b *testing.B) {
	for _, handlers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("handlers=%d", handlers), func(b *testing.B) {
			bus := eventbus.New(eventbus.Config{})
			for range handlers {
				if _, err := bus.SubscribeEnvelope("test.thing.happened", nop); err != nil {
					b.Fatal(err)
				}
			}
			env := eventbustest.Envelope(b, 1)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += handlers {
				if err := bus.Dispatch(ctx, env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDispatchSyncHooks is BenchmarkDispatchSync with success hooks
// set, which adds timing per handler call.
func BenchmarkDispatchSyncHooks(b *testing.B) {
	bus := eventbus.New(eventbus.Config{Hooks: eventbus.Hooks{
		BeforeDispatch:   func(context.Context, eventbus.HookInfo) {},
		HandlerSucceeded: func(context.Context, eventbus.HookInfo) {},
	}})
	if _, err := bus.SubscribeEnvelope("test.thing.happened", nop); err != nil {
		b.Fatal(err)
	}
	env := eventbustest.Envelope(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := bus.Dispatch(context.Background(), env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDispatchTyped is one dispatch to one typed handler: the dispatch
// overhead plus contracts.Event.Decode of the data (which allocates, as
// encoding/json does).
func BenchmarkDispatchTyped(b *testing.B) {
	bus := eventbus.New(eventbus.Config{})
	if _, err := eventbus.Subscribe(bus, thingHappened, func(context.Context, eventbustest.Data) error { return nil }); err != nil {
		b.Fatal(err)
	}
	env := eventbustest.Envelope(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := bus.Dispatch(context.Background(), env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDispatchConcurrent is one dispatch to 4 no-op handlers with the
// concurrent backend (goroutine start-up included).
func BenchmarkDispatchConcurrent(b *testing.B) {
	c, err := eventbus.NewConcurrent(eventbus.ConcurrentConfig{})
	if err != nil {
		b.Fatal(err)
	}
	bus := eventbus.New(eventbus.Config{Backend: c})
	for range 4 {
		if _, err := bus.SubscribeEnvelope("test.thing.happened", nop); err != nil {
			b.Fatal(err)
		}
	}
	env := eventbustest.Envelope(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := bus.Dispatch(context.Background(), env); err != nil {
			b.Fatal(err)
		}
	}
}
