//go:build !race

package eventbus_test

import (
	"context"
	"testing"

	"github.com/firstunicorn/messagekit-go/pkg/eventbus"
	"github.com/firstunicorn/messagekit-go/pkg/eventbus/eventbustest"
)

// Pins the benchmark's promise in every test run: synchronous dispatch to
// envelope-level handlers with no hooks allocates nothing. (Excluded under
// -race, whose instrumentation changes allocation counts.)
func TestDispatchSyncZeroAllocs(t *testing.T) {
	bus := eventbus.New(eventbus.Config{})
	for range 3 {
		if _, err := bus.SubscribeEnvelope("test.thing.happened", nop); err != nil {
			t.Fatal(err)
		}
	}
	env := eventbustest.Envelope(t, 1)
	ctx := context.Background()
	if allocs := testing.AllocsPerRun(1000, func() { _ = bus.Dispatch(ctx, env) }); allocs != 0 {
		t.Errorf("Dispatch allocated %.1f times per run, want 0", allocs)
	}
}
