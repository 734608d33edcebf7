package kafkadlq_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/bookkeepertest"
	"github.com/firstunicorn/messagekit-go/internal/bookkeeper/kafkadlq"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

func TestMatchEventType(t *testing.T) {
	for _, tt := range []struct {
		pattern, eventType string
		want               bool
	}{
		{"#", "identity.user.created", true},
		{"identity.#", "identity.user.created", true},
		{"identity.#", "identity", true},
		{"identity.#", "orders.order.created", false},
		{"*.user.*", "identity.user.created", true},
		{"*.user.*", "identity.user", false},
		{"identity.user.created", "identity.user.created", true},
		{"identity.user.created", "identity.user.deleted", false},
		{"#.created", "orders.order.created", true},
		{"#.created", "orders.order.deleted", false},
		{"orders.*", "orders.order.created", false},
	} {
		if got := kafkadlq.MatchEventType(tt.pattern, tt.eventType); got != tt.want {
			t.Errorf("MatchEventType(%q, %q) = %v, want %v", tt.pattern, tt.eventType, got, tt.want)
		}
	}
}

// TestTwoBookkeepersOneTopic pins the production topology of DESIGN.md §3
// for Kafka: two producers' bookkeepers (each its own database and
// consumer group) on one shared DLQ topic store their own producers' dead
// letters only, both acknowledge every record, and a record whose event
// type is unknown is stored by both rather than by neither.
func TestTwoBookkeepersOneTopic(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	other := bookkeepertest.NewEnv(t)

	identity := r.config(nil)
	identity.EventTypes = []string{"identity.#"}
	orders := r.config(other.Recorder)
	orders.GroupID = testenv.UniqueName(t, "bookkeeper-orders")
	orders.Logger = other.Logs.Logger()
	orders.Metrics = other.Recorder.Metrics()
	orders.EventTypes = []string{"orders.#", "billing.invoice.*"}
	_, stopIdentity := r.start(t, identity)
	_, stopOrders := r.start(t, orders)

	ids := map[string]uuid.UUID{}
	var recs []*kgo.Record
	for i, typ := range []string{"identity.user.created", "orders.order.created", "billing.invoice.paid", "shipping.parcel.sent"} {
		ids[typ] = uuid.New()
		recs = append(recs, &kgo.Record{Partition: int32(i % 2), Value: envelope(ids[typ], typ),
			Headers: kgoHeaders(append(connectHeaders(), kv{"eventType", typ}, kv{"id", ids[typ].String()}))})
	}
	recs = append(recs, &kgo.Record{Partition: 1, Value: []byte("not json at all")})
	r.produce(t, recs...)

	r.WaitRows(t, 2, 30*time.Second)
	other.WaitRows(t, 3, 30*time.Second)
	// Everything was read by both groups, so nothing more will arrive.
	bookkeepertest.WaitFor(t, 30*time.Second, "both groups committed every record", func() bool {
		a := r.committed(t)
		orig := r.group
		r.group = orders.GroupID
		b := r.committed(t)
		r.group = orig
		return a == [2]int64{2, 3} && b == [2]int64{2, 3}
	})
	stopIdentity()
	stopOrders()

	has := func(e *bookkeepertest.Env, typ string) bool {
		var n int
		if err := e.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM dead_letters WHERE event_id = $1`, ids[typ]).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	for typ, want := range map[string][2]bool{
		"identity.user.created": {true, false},
		"orders.order.created":  {false, true},
		"billing.invoice.paid":  {false, true},
		"shipping.parcel.sent":  {false, false},
	} {
		if got := [2]bool{has(r.Env, typ), has(other, typ)}; got != want {
			t.Errorf("%s stored by (identity, orders) = %v, want %v", typ, got, want)
		}
	}
	if a, b := r.Count(t), other.Count(t); a != 2 || b != 3 {
		t.Errorf("rows: identity %d, orders %d; want 2 (its event and the unparseable record) and 3", a, b)
	}
}
