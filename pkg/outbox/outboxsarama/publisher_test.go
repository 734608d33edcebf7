package outboxsarama_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
	"github.com/firstunicorn/messagekit-go/pkg/outbox/outboxsarama"
)

func newPublisher(t *testing.T, brokers []string, tune func(*sarama.Config)) *outboxsarama.Publisher {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Retry.Backoff = 10 * time.Millisecond
	cfg.Producer.Retry.Max = 1
	if tune != nil {
		tune(cfg)
	}
	p, err := outboxsarama.New(brokers, outboxsarama.Config{Sarama: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Acknowledged records are in Kafka as given, in the partition the Java
// client would choose for their key.
func TestPublishWritesRecords(t *testing.T) {
	t.Parallel()
	kafka := testenv.KafkaWith(t, testenv.KafkaOptions{Partitions: 8, Topics: []string{"events"}})
	p := newPublisher(t, kafka.Brokers, nil)
	records := []outbox.Record{
		{Topic: "events", Key: []byte("user-1"), Value: []byte(`{"n":1}`), Headers: []outbox.Header{{Key: "id", Value: []byte("e1")}, {Key: "eventType", Value: []byte("a.b.c")}}},
		{Topic: "events", Key: []byte("user-2"), Value: []byte(`{"n":2}`), Headers: []outbox.Header{{Key: "id", Value: []byte("e2")}}},
		{Topic: "events", Key: []byte("user-3"), Value: []byte(`{"n":3}`)},
	}
	if errs := p.Publish(ctx(t), records); errs != nil {
		t.Fatalf("Publish: %v", errs)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Brokers...), kgo.ConsumeTopics("events"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	java := kgo.StickyKeyPartitioner(nil).ForTopic("events")
	got := map[string]*kgo.Record{}
	for len(got) < len(records) {
		fs := cl.PollFetches(ctx(t))
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Key)] = r })
	}
	for _, want := range records {
		r := got[string(want.Key)]
		if string(r.Value) != string(want.Value) || len(r.Headers) != len(want.Headers) {
			t.Errorf("record %s: value %s headers %v", want.Key, r.Value, r.Headers)
		}
		for i, h := range want.Headers {
			if r.Headers[i].Key != h.Key || string(r.Headers[i].Value) != string(h.Value) {
				t.Errorf("record %s header %d: %s=%s, want %s=%s", want.Key, i, r.Headers[i].Key, r.Headers[i].Value, h.Key, h.Value)
			}
		}
		if wantP := int32(java.Partition(r, 8)); r.Partition != wantP {
			t.Errorf("record %s in partition %d, Java client would use %d", want.Key, r.Partition, wantP)
		}
	}
}

// Errors are per record and say whether retrying can help.
func TestPublishErrors(t *testing.T) {
	t.Parallel()
	t.Run("record too large is permanent", func(t *testing.T) {
		t.Parallel()
		brokers := testenv.Kafka(t, "events")
		p := newPublisher(t, brokers, func(c *sarama.Config) { c.Producer.MaxMessageBytes = 1024 })
		errs := p.Publish(ctx(t), []outbox.Record{
			{Topic: "events", Key: []byte("a"), Value: []byte("{}")},
			{Topic: "events", Key: []byte("b"), Value: []byte(`{"x":"` + strings.Repeat("x", 2048) + `"}`)},
		})
		if len(errs) != 2 || errs[0] != nil || !outbox.IsPermanent(errs[1]) {
			t.Fatalf("errors %v, want [nil, permanent]", errs)
		}
		var pe *outboxsarama.PublishError
		if !errors.As(errs[1], &pe) {
			t.Errorf("%T is not a *PublishError", errs[1])
		}
	})
	t.Run("broker error is retriable", func(t *testing.T) {
		t.Parallel()
		kafka := testenv.KafkaWith(t, testenv.KafkaOptions{Topics: []string{"events"}})
		if kafka.Fake == nil {
			t.Skip("needs kfake")
		}
		kafka.Fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			kafka.Fake.KeepControl()
			return nil, errors.New("injected: connection dropped"), true
		})
		p := newPublisher(t, kafka.Brokers, nil)
		errs := p.Publish(ctx(t), []outbox.Record{{Topic: "events", Key: []byte("a"), Value: []byte("{}")}})
		if len(errs) != 1 || errs[0] == nil || outbox.IsPermanent(errs[0]) {
			t.Fatalf("errors %v, want one retriable error", errs)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		t.Parallel()
		kafka := testenv.KafkaWith(t, testenv.KafkaOptions{Topics: []string{"events"}})
		if kafka.Fake == nil {
			t.Skip("needs kfake")
		}
		p := newPublisher(t, kafka.Brokers, func(c *sarama.Config) { c.Net.ReadTimeout = 500 * time.Millisecond })
		c, cancel := context.WithCancel(ctx(t))
		kafka.Fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			cancel()
			return nil, nil, true // never answer
		})
		errs := p.Publish(c, []outbox.Record{{Topic: "events", Key: []byte("a"), Value: []byte("{}")}})
		if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
			t.Fatalf("errors %v, want context.Canceled", errs)
		}
	})
	t.Run("after Close", func(t *testing.T) {
		t.Parallel()
		brokers := testenv.Kafka(t, "events")
		p := newPublisher(t, brokers, nil)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		errs := p.Publish(ctx(t), []outbox.Record{{Topic: "events", Key: []byte("a"), Value: []byte("{}")}})
		if len(errs) != 1 || !errors.Is(errs[0], outboxsarama.ErrClosed) {
			t.Fatalf("errors %v, want ErrClosed", errs)
		}
	})
	t.Run("no records", func(t *testing.T) {
		t.Parallel()
		p := newPublisher(t, testenv.Kafka(t, "events"), nil)
		if errs := p.Publish(ctx(t), nil); errs != nil {
			t.Errorf("Publish(nil) = %v", errs)
		}
	})
}

// New refuses a configuration sarama can not run, and forces the settings
// the Relay relies on over the caller's.
func TestNewConfig(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t, "events")
	old := sarama.NewConfig()
	old.Version = sarama.V0_10_2_0 // before idempotent producers
	if _, err := outboxsarama.New(brokers, outboxsarama.Config{Sarama: old}); err == nil {
		t.Error("New accepted Kafka 0.10.2")
	}
	loose := sarama.NewConfig()
	loose.Producer.RequiredAcks = sarama.WaitForLocal
	loose.Net.MaxOpenRequests = 5
	loose.Producer.Retry.Max = 0
	p, err := outboxsarama.New(brokers, outboxsarama.Config{Sarama: loose})
	if err != nil {
		t.Fatalf("New did not override the settings it needs: %v", err)
	}
	defer p.Close()
	if loose.Producer.RequiredAcks != sarama.WaitForLocal || loose.Net.MaxOpenRequests != 5 {
		t.Error("New modified the caller's config")
	}
	if errs := p.Publish(ctx(t), []outbox.Record{{Topic: "events", Key: []byte("k"), Value: []byte("{}")}}); errs != nil {
		t.Fatal(errs)
	}
}
