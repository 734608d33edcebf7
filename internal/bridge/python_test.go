package bridge_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// A Python messagekit producer's flat event (testdata of pkg/contracts,
// written by pydantic) is bridged with its body unchanged and the same
// properties and headers a nested event gets; null correlation and
// causation ids leave correlation_id unset.
func TestBridgeForwardsFlatEventsUnchanged(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, "#")
	var evs []event
	for _, name := range []string{"user_created.flat-dumps.json", "user_created_correlated.flat.json"} {
		body, err := os.ReadFile("../../pkg/contracts/testdata/python/" + name)
		must(t, err)
		env, err := contracts.Decode(body)
		must(t, err)
		// Without the id header too: the bridge then reads the id from the flat body.
		evs = append(evs, event{env: env, value: body, headers: map[string]string{}})
	}
	recs := r.produce(evs...)
	r.start(r.config(prometheus.NewRegistry()))
	got := r.waitFor(30*time.Second, "the flat events", hasIDs(evs[0].env.EventID, evs[1].env.EventID))
	for i, d := range got {
		env := evs[i].env
		if !bytes.Equal(d.Body, recs[i].Value) {
			t.Errorf("body changed:\n%s\n%s", d.Body, recs[i].Value)
		}
		if d.MessageId != env.EventID.String() || d.Type != "identity.user.created" || d.RoutingKey != "identity.user.created" ||
			d.AppId != "identity-service" || d.CorrelationId != env.CorrelationID ||
			!d.Timestamp.Equal(env.OccurredAt.Truncate(time.Second)) ||
			d.Headers[contracts.AMQPHeaderAggregateID] != env.AggregateID {
			t.Errorf("delivery %d: %+v", i, d)
		}
	}
	if got[0].CorrelationId != "" || got[1].CorrelationId != "0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8c" {
		t.Errorf("correlation ids %q %q", got[0].CorrelationId, got[1].CorrelationId)
	}
}
