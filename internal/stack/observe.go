package stack

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Progress is where the events are, counted at one moment from the durable
// state of each stage (not from processes' counters, which restart).
type Progress struct {
	Written      int64 // rows in outbox_events
	InKafka      int64 // records in the events topic (the sum of its partitions' end offsets)
	Bridged      int64 // dedup keys the bridge recorded after RabbitMQ confirmed them
	Consumed     int64 // distinct events the example consumer handled
	DeadLettered int64 // rows in dead_letters (any status)
	Pending      int64 // of those, still pending
}

func (p Progress) String() string {
	return fmt.Sprintf("written %d → in Kafka %d → bridged %d → consumed %d → dead-lettered %d (%d pending)",
		p.Written, p.InKafka, p.Bridged, p.Consumed, p.DeadLettered, p.Pending)
}

// Observer reads Progress and the end-of-run Summary.
type Observer struct {
	Pool  *pgxpool.Pool
	Kafka *kgo.Client
	Names Names
	// Since limits the counts to this run: rows written at or after it
	// (the zero time counts everything in the database).
	Since time.Time
}

// Progress counts each stage.
func (o *Observer) Progress(ctx context.Context) (Progress, error) {
	var p Progress
	err := o.Pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM outbox_events WHERE created_at >= $2),
		(SELECT count(*) FROM processed_messages WHERE consumer_name = $1 AND processed_at >= $2),
		(SELECT count(DISTINCT event_id) FROM fulfilment_log WHERE consumed_at >= $2),
		(SELECT count(*) FROM dead_letters WHERE first_seen_at >= $2),
		(SELECT count(*) FROM dead_letters WHERE status = 'pending' AND first_seen_at >= $2)`, o.Names.BridgeGroup, o.Since).
		Scan(&p.Written, &p.Bridged, &p.Consumed, &p.DeadLettered, &p.Pending)
	if err != nil {
		return p, fmt.Errorf("count stages: %w", err)
	}
	p.InKafka, err = EndOffsets(ctx, o.Kafka, o.Names.Topic)
	return p, err
}

// EndOffsets sums the end offsets of topic's partitions: the records it
// has ever held.
func EndOffsets(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("kafka metadata: %w", err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, t := range mresp.Topics {
		for _, part := range t.Partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = part.Partition
			rp.Timestamp = -1 // latest
			rt.Partitions = append(rt.Partitions, rp)
		}
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("kafka list offsets: %w", err)
	}
	var sum int64
	for _, t := range resp.Topics {
		for _, part := range t.Partitions {
			sum += part.Offset
		}
	}
	return sum, nil
}

// Summary checks the guarantees at the end of a run: every written event
// was handled by the consumer exactly once or is a pending dead letter.
type Summary struct {
	Written       int64 // events in the outbox
	ConsumedOnce  int64 // handled exactly once
	ConsumedTwice int64 // handled more than once: must be 0
	DeadLettered  int64 // not handled, and a pending dead letter
	Missing       int64 // neither: must be 0 once the pipeline has drained
	Replayed      int64 // dead letters replayed (then handled, if counted in ConsumedOnce)
	OutboxFailed  int64 // outbox rows still flagged failed
	Rejected      int64 // distinct events the consumer rejected on first delivery
}

// OK reports whether the guarantees hold.
func (s Summary) OK() bool { return s.ConsumedTwice == 0 && s.Missing == 0 }

func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  written to the outbox          %7d\n", s.Written)
	fmt.Fprintf(&b, "  consumed exactly once          %7d\n", s.ConsumedOnce)
	fmt.Fprintf(&b, "  consumed more than once        %7d\n", s.ConsumedTwice)
	fmt.Fprintf(&b, "  dead-lettered, pending         %7d\n", s.DeadLettered)
	fmt.Fprintf(&b, "  lost (none of the above)       %7d\n", s.Missing)
	fmt.Fprintf(&b, "  rejected by the consumer       %7d  (of those, replayed and consumed: %d)\n", s.Rejected, s.Replayed)
	fmt.Fprintf(&b, "  outbox rows flagged failed     %7d", s.OutboxFailed)
	return b.String()
}

// Summary reads the end-of-run counts.
func (o *Observer) Summary(ctx context.Context) (Summary, error) {
	var s Summary
	err := o.Pool.QueryRow(ctx, `
WITH handled AS (SELECT event_id, count(*) AS n FROM fulfilment_log GROUP BY event_id),
     pending AS (SELECT DISTINCT event_id FROM dead_letters WHERE status = 'pending' AND event_id IS NOT NULL)
SELECT count(*),
       count(*) FILTER (WHERE h.n = 1),
       count(*) FILTER (WHERE h.n > 1),
       count(*) FILTER (WHERE h.n IS NULL AND p.event_id IS NOT NULL),
       count(*) FILTER (WHERE h.n IS NULL AND p.event_id IS NULL),
       count(*) FILTER (WHERE o.failed),
       count(*) FILTER (WHERE r.event_id IS NOT NULL),
       count(*) FILTER (WHERE r.event_id IS NOT NULL AND h.n IS NOT NULL)
FROM outbox_events o
LEFT JOIN handled h USING (event_id)
LEFT JOIN pending p USING (event_id)
LEFT JOIN fulfilment_rejections r USING (event_id)
WHERE o.created_at >= $1`, o.Since).Scan(&s.Written, &s.ConsumedOnce, &s.ConsumedTwice, &s.DeadLettered,
		&s.Missing, &s.OutboxFailed, &s.Rejected, &s.Replayed)
	if err != nil {
		return s, fmt.Errorf("summarize: %w", err)
	}
	return s, nil
}
