package deadletter_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// BenchmarkRecord measures Store.Record alone: batches of new dead letters
// with event ids, half of them in the outbox, as dead_letters/s.
func BenchmarkRecord(b *testing.B) {
	for _, size := range []int{1, 100, 500} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, db := newStoreB(b)
			ctx := context.Background()
			dls := make([]deadletter.DeadLetter, size)
			b.ResetTimer()
			for done := 0; done < b.N; done += size {
				b.StopTimer()
				for i := range dls {
					id := uuid.New()
					if i%2 == 0 {
						if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at)
							VALUES ($1, 'orders.order.created', 'order-7', '{}', now())`, id); err != nil {
							b.Fatal(err)
						}
					}
					dls[i] = rabbit(id, `{"eventId":"x"}`)
					dls[i].Delivery = "amqp:dlq:" + id.String()
				}
				b.StartTimer()
				if _, err := s.Record(ctx, dls); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "dead_letters/s")
		})
	}
}
