package adminapi_test

import (
	"context"
	"errors"
	"testing"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

type fakePublisher struct{ closed int }

func (*fakePublisher) Publish(context.Context, []outbox.Record) []error { return nil }
func (f *fakePublisher) Close() error                                   { f.closed++; return nil }

// TestLazyPublisher pins that the Kafka publisher is built on first use,
// built again after a failed build (Kafka down at start), and closed once.
func TestLazyPublisher(t *testing.T) {
	t.Parallel()
	builds := 0
	fake := &fakePublisher{}
	l := adminapi.NewLazyPublisher(func() (adminapi.PublisherCloser, error) {
		builds++
		if builds == 1 {
			return nil, errors.New("kafka down")
		}
		return fake, nil
	})
	recs := []outbox.Record{{Topic: "t"}, {Topic: "t"}}
	if errs := l.Publish(context.Background(), recs); len(errs) != 2 || errs[0] == nil {
		t.Fatalf("failed build: %v", errs)
	}
	for range 2 {
		if errs := l.Publish(context.Background(), recs); errs != nil {
			t.Fatalf("after build: %v", errs)
		}
	}
	if builds != 2 {
		t.Errorf("%d builds, want 2", builds)
	}
	if err := errors.Join(l.Close(), l.Close()); err != nil || fake.closed != 1 {
		t.Errorf("close: %v, closed %d times", err, fake.closed)
	}
	if errs := l.Publish(context.Background(), recs); errs == nil {
		t.Error("publish after close succeeded")
	}
}
