package dedup_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
)

type orderPlaced struct {
	OrderID string `json:"orderId"`
	Amount  int    `json:"amount"`
}

var (
	orderPlacedEv  = contracts.Define[orderPlaced]("shop.order.placed")
	orderShippedEv = contracts.Define[orderPlaced]("shop.order.shipped")
)

// envelope returns a valid envelope of type ev with data, and its JSON.
func envelope[E any](t testing.TB, ev contracts.Event[E], data E) (contracts.Envelope, []byte) {
	t.Helper()
	env, err := ev.New("order-1", "shop-service", data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return env, b
}

// recorder is a handler that counts runs per event id and fails as told.
type recorder struct {
	mu    sync.Mutex
	runs  map[uuid.UUID]int
	txs   map[pgx.Tx]bool
	fails map[uuid.UUID][]error // errors to return, one per run, then nil
}

func newRecorder() *recorder {
	return &recorder{runs: map[uuid.UUID]int{}, txs: map[pgx.Tx]bool{}, fails: map[uuid.UUID][]error{}}
}

func (r *recorder) HandleEvent(_ context.Context, tx pgx.Tx, env contracts.Envelope) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs[env.EventID]++
	r.txs[tx] = true
	if errs := r.fails[env.EventID]; len(errs) > 0 {
		r.fails[env.EventID] = errs[1:]
		return errs[0]
	}
	return nil
}

func (r *recorder) count(id uuid.UUID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[id]
}

func newProcessor(t *testing.T, cfg dedup.ProcessorConfig) *dedup.Processor {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = dedup.NewMemory()
	}
	if cfg.Consumer == "" {
		cfg.Consumer = "billing"
	}
	cfg.Retry = dedup.Retry{MaxAttempts: 3, Backoff: time.Millisecond}
	p, err := dedup.NewProcessor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Every kind of poison is dead-lettered with its stage, without stopping the
// good messages of the same batch, which are handled exactly once.
func TestProcessorOutcomes(t *testing.T) {
	t.Parallel()
	store := dedup.NewMemory()
	seen := newRecorder()
	var router dedup.Router
	dedup.On(&router, orderPlacedEv, func(ctx context.Context, tx pgx.Tx, o orderPlaced) error {
		env, _ := dedup.EnvelopeFrom(ctx)
		if o.OrderID == "permanent" {
			return dedup.Permanent(errors.New("order refused"))
		}
		return seen.HandleEvent(ctx, tx, env)
	})
	reg := prometheus.NewRegistry()
	p := newProcessor(t, dedup.ProcessorConfig{Store: store, Handler: &router, RequireID: true, Metrics: reg})

	good, goodBody := envelope(t, orderPlacedEv, orderPlaced{OrderID: "1"})
	good2, good2Body := envelope(t, orderPlacedEv, orderPlaced{OrderID: "2"})
	old, oldBody := envelope(t, orderPlacedEv, orderPlaced{OrderID: "3"})
	if _, err := dedup.Handle(context.Background(), store, "billing", old.EventID, func(context.Context, pgx.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	unknown, unknownBody := envelope(t, orderShippedEv, orderPlaced{OrderID: "4"})
	refused, refusedBody := envelope(t, orderPlacedEv, orderPlaced{OrderID: "permanent"})
	badData, err := contracts.New(orderPlacedEv.Name(), "order-1", "shop-service", map[string]any{"amount": "ten"})
	if err != nil {
		t.Fatal(err)
	}
	badDataBody, _ := badData.MarshalJSON()
	id := func(e contracts.Envelope) string { return e.EventID.String() }

	// One batch holding every case: poison must not stop the others.
	cases := []struct {
		name   string
		msg    dedup.Message
		result dedup.Result
		stage  contracts.Stage
		errIs  error
	}{
		{"good", dedup.Message{ID: id(good), Body: goodBody}, dedup.Handled, "", nil},
		{"malformed body", dedup.Message{ID: id(good), Body: []byte(`{"eventId":`)}, dedup.DeadLetter, contracts.StageDecode, nil},
		{"not an envelope", dedup.Message{ID: id(good), Body: []byte(`{"eventId":"` + id(good) + `"}`)}, dedup.DeadLetter, contracts.StageValidate, nil},
		{"no message id", dedup.Message{Body: good2Body}, dedup.DeadLetter, contracts.StageValidate, nil},
		{"message id not a UUID", dedup.Message{ID: "42", Body: good2Body}, dedup.DeadLetter, contracts.StageValidate, nil},
		{"message id disagrees", dedup.Message{ID: id(good), Body: good2Body}, dedup.DeadLetter, contracts.StageValidate, nil},
		{"second good", dedup.Message{ID: id(good2), Body: good2Body}, dedup.Handled, "", nil},
		{"same id again in the batch", dedup.Message{ID: id(good2), Body: good2Body}, dedup.Duplicate, "", nil},
		{"processed before", dedup.Message{ID: id(old), Body: oldBody}, dedup.Duplicate, "", nil},
		{"unknown type", dedup.Message{ID: id(unknown), Body: unknownBody}, dedup.DeadLetter, contracts.StageTaskPut, contracts.ErrUnknownType},
		{"permanent handler error", dedup.Message{ID: id(refused), Body: refusedBody}, dedup.DeadLetter, contracts.StageTaskPut, nil},
		{"data does not fit the type", dedup.Message{ID: id(badData), Body: badDataBody}, dedup.DeadLetter, contracts.StageValidate, nil},
	}
	msgs := make([]dedup.Message, len(cases))
	for i, tc := range cases {
		msgs[i] = tc.msg
	}
	out, err := p.Process(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(msgs) {
		t.Fatalf("%d outcomes for %d messages", len(out), len(msgs))
	}
	for i, w := range cases {
		o := out[i]
		if o.Result != w.result || o.Stage != w.stage {
			t.Errorf("%s: got %v %q (%v), want %v %q", w.name, o.Result, o.Stage, o.Err, w.result, w.stage)
		}
		if (o.Result == dedup.DeadLetter) != (o.Err != nil) {
			t.Errorf("%s: result %v with error %v", w.name, o.Result, o.Err)
		}
		if w.errIs != nil && !errors.Is(o.Err, w.errIs) {
			t.Errorf("%s: error %v does not wrap %v", w.name, o.Err, w.errIs)
		}
		if w.stage == contracts.StageTaskPut && o.Attempts != 1 {
			t.Errorf("%s: %d attempts for a permanent error, want 1", w.name, o.Attempts)
		}
	}
	// The permanent failure rolled the batch back, so the good ones ran
	// twice, once in the rolled-back batch and once alone; they committed
	// once.
	if seen.count(good.EventID) != 2 || seen.count(good2.EventID) != 2 || seen.count(old.EventID) != 0 {
		t.Errorf("handler runs: good %d, good2 %d, old %d; want 2, 2, 0",
			seen.count(good.EventID), seen.count(good2.EventID), seen.count(old.EventID))
	}
	again, err := p.Process(context.Background(), msgs[:1])
	if err != nil || again[0].Result != dedup.Duplicate {
		t.Errorf("redelivery of a handled message: %+v, %v; want duplicate", again, err)
	}
	got := gather(t, reg)
	for k, v := range map[string]float64{
		`messagekit_consumer_handled_total{consumer="billing"}`:                         2,
		`messagekit_consumer_duplicates_total{consumer="billing"}`:                      3,
		`messagekit_consumer_dead_lettered_total{consumer="billing",reason="DECODE"}`:   1,
		`messagekit_consumer_dead_lettered_total{consumer="billing",reason="VALIDATE"}`: 5,
		`messagekit_consumer_dead_lettered_total{consumer="billing",reason="TASK_PUT"}`: 2,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// A transient failure is retried in a fresh transaction until it succeeds;
// the handler's work commits once.
func TestProcessorRetriesTransient(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	p := newProcessor(t, dedup.ProcessorConfig{Handler: rec, Metrics: reg})
	env, body := envelope(t, orderPlacedEv, orderPlaced{OrderID: "1"})
	rec.fails[env.EventID] = []error{errors.New("deadlock"), errors.New("timeout")}
	out, err := p.Process(context.Background(), []dedup.Message{{Body: body}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Result != dedup.Handled || out[0].Attempts != 3 {
		t.Fatalf("outcome %+v, want handled after 3 attempts", out[0])
	}
	if got := gather(t, reg)[`messagekit_consumer_retries_total{consumer="billing"}`]; got != 2 {
		t.Fatalf("retries metric %v, want 2", got)
	}
	out, _ = p.Process(context.Background(), []dedup.Message{{Body: body}})
	if out[0].Result != dedup.Duplicate || rec.count(env.EventID) != 3 {
		t.Fatalf("redelivery: %v after %d runs, want duplicate after 3", out[0].Result, rec.count(env.EventID))
	}
}

// A handler that keeps failing is dead-lettered after MaxAttempts, and its
// claim is not kept.
func TestProcessorGivesUp(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	store := dedup.NewMemory()
	p := newProcessor(t, dedup.ProcessorConfig{Store: store, Handler: rec})
	env, body := envelope(t, orderPlacedEv, orderPlaced{OrderID: "1"})
	boom := errors.New("boom")
	rec.fails[env.EventID] = []error{boom, boom, boom, boom}
	out, err := p.Process(context.Background(), []dedup.Message{{Body: body}})
	if err != nil {
		t.Fatal(err)
	}
	o := out[0]
	if o.Result != dedup.DeadLetter || o.Attempts != 3 || !errors.Is(o.Err, boom) || o.Stage != contracts.StageTaskPut {
		t.Fatalf("outcome %+v, want dead-letter TASK_PUT after 3 attempts wrapping boom", o)
	}
	if res, err := dedup.Handle(context.Background(), store, "billing", env.EventID,
		func(context.Context, pgx.Tx) error { return nil }); res != dedup.Handled || err != nil {
		t.Fatalf("the claim of a dead-lettered event was kept: %v, %v", res, err)
	}
}

// New messages of a batch are handled in one transaction.
func TestProcessorBatchIsOneTransaction(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	p := newProcessor(t, dedup.ProcessorConfig{Handler: rec})
	var msgs []dedup.Message
	for i := range 20 {
		_, body := envelope(t, orderPlacedEv, orderPlaced{OrderID: fmt.Sprint(i)})
		msgs = append(msgs, dedup.Message{Body: body})
	}
	out, err := p.Process(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Result != dedup.Handled {
			t.Fatalf("message %d: %v", i, o.Result)
		}
	}
	if len(rec.txs) != 1 {
		t.Fatalf("20 messages used %d transactions, want 1", len(rec.txs))
	}
}

// A failure in a batch rolls the whole batch back and replays it one by
// one: the failing message is retried alone, the others commit once.
func TestProcessorBatchFallback(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	store := dedup.NewMemory()
	p := newProcessor(t, dedup.ProcessorConfig{Store: store, Handler: rec})
	var msgs []dedup.Message
	var envs []contracts.Envelope
	for i := range 5 {
		env, body := envelope(t, orderPlacedEv, orderPlaced{OrderID: fmt.Sprint(i)})
		envs = append(envs, env)
		msgs = append(msgs, dedup.Message{Body: body})
	}
	rec.fails[envs[2].EventID] = []error{errors.New("flaky")}
	out, err := p.Process(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Result != dedup.Handled {
			t.Fatalf("message %d: %+v", i, o)
		}
	}
	if out[2].Attempts != 1 {
		// The batch attempt is not counted: the retry alone succeeded.
		t.Errorf("message 2: %d attempts, want 1", out[2].Attempts)
	}
	tx, _ := store.Begin(context.Background())
	defer func() { _ = tx.Rollback(context.Background()) }()
	ids := make([]uuid.UUID, len(envs))
	for i, e := range envs {
		ids[i] = e.EventID
	}
	done, err := store.Processed(context.Background(), tx, "billing", ids)
	if err != nil || fmt.Sprint(done) != "[true true true true true]" {
		t.Fatalf("processed after fallback: %v, %v", done, err)
	}
}

// Cancelling stops during a retry wait: the outcomes so far come back with
// ctx's error and the interrupted message keeps no claim.
func TestProcessorCancel(t *testing.T) {
	t.Parallel()
	store := dedup.NewMemory()
	first, body := envelope(t, orderPlacedEv, orderPlaced{OrderID: "2"})
	second, body2 := envelope(t, orderPlacedEv, orderPlaced{OrderID: "3"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := 0
	h := dedup.HandlerFunc(func(_ context.Context, _ pgx.Tx, env contracts.Envelope) error {
		if env.EventID != second.EventID {
			return nil
		}
		runs++
		if runs == 2 { // the batch attempt, then the first lone attempt
			cancel()
		}
		return errors.New("flaky")
	})
	p, err := dedup.NewProcessor(dedup.ProcessorConfig{Store: store, Consumer: "billing", Handler: h,
		Retry: dedup.Retry{MaxAttempts: 100, Backoff: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Process(ctx, []dedup.Message{{Body: []byte("nope")}, {Body: body}, {Body: body2}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Process error %v, want context.Canceled", err)
	}
	if len(out) != 2 || out[0].Result != dedup.DeadLetter || out[1].Result != dedup.Handled || out[1].EventID != first.EventID {
		t.Fatalf("outcomes %+v, want the dead letter and the first message", out)
	}
	if res, _ := dedup.Handle(context.Background(), store, "billing", second.EventID,
		func(context.Context, pgx.Tx) error { return nil }); res != dedup.Handled {
		t.Fatal("the interrupted message kept its claim")
	}
}

// flakyStore fails to begin transactions a number of times, like a
// database that is down for a while.
type flakyStore struct {
	*dedup.Memory
	failures atomic.Int32
}

func (f *flakyStore) Begin(ctx context.Context) (pgx.Tx, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, errors.New("connection refused")
	}
	return f.Memory.Begin(ctx)
}

// A store that cannot begin is waited for, without using up attempts.
func TestProcessorWaitsForStore(t *testing.T) {
	t.Parallel()
	store := &flakyStore{Memory: dedup.NewMemory()}
	store.failures.Store(5)
	rec := newRecorder()
	p := newProcessor(t, dedup.ProcessorConfig{Store: store, Handler: rec})
	_, body := envelope(t, orderPlacedEv, orderPlaced{OrderID: "1"})
	out, err := p.Process(context.Background(), []dedup.Message{{Body: body}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Result != dedup.Handled || out[0].Attempts != 1 {
		t.Fatalf("outcome %+v, want handled at the first counted attempt", out[0])
	}
}

func TestNewProcessorValidates(t *testing.T) {
	t.Parallel()
	h := dedup.HandlerFunc(func(context.Context, pgx.Tx, contracts.Envelope) error { return nil })
	for _, tc := range []struct {
		name string
		cfg  dedup.ProcessorConfig
	}{
		{"no store", dedup.ProcessorConfig{Consumer: "c", Handler: h}},
		{"no consumer", dedup.ProcessorConfig{Store: dedup.NewMemory(), Handler: h}},
		{"no handler", dedup.ProcessorConfig{Store: dedup.NewMemory(), Consumer: "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := dedup.NewProcessor(tc.cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
	// Two processors of one consumer share a registry's metrics.
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := dedup.NewProcessor(dedup.ProcessorConfig{Store: dedup.NewMemory(), Consumer: "c", Handler: h, Metrics: reg}); err != nil {
			t.Fatal(err)
		}
	}
}

// gather returns the counters of reg as name{label="value",…} → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetCounter() == nil {
				continue
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	return out
}

// batchRecorder is a BatchHandler that records its calls.
type batchRecorder struct {
	*recorder
	calls [][]uuid.UUID
	fail  bool
}

func (b *batchRecorder) HandleEvents(_ context.Context, _ pgx.Tx, envs []contracts.Envelope) error {
	var ids []uuid.UUID
	for _, e := range envs {
		ids = append(ids, e.EventID)
	}
	b.calls = append(b.calls, ids)
	if b.fail {
		return errors.New("batch insert failed")
	}
	return nil
}

// A BatchHandler gets the new events of a batch in one call, in order,
// without the duplicates; when that call fails the events are handled one
// by one through HandleEvent.
func TestProcessorBatchHandler(t *testing.T) {
	t.Parallel()
	store := dedup.NewMemory()
	h := &batchRecorder{recorder: newRecorder()}
	p := newProcessor(t, dedup.ProcessorConfig{Store: store, Handler: h})
	var msgs []dedup.Message
	var want []uuid.UUID
	for i := range 4 {
		env, body := envelope(t, orderPlacedEv, orderPlaced{OrderID: fmt.Sprint(i)})
		msgs = append(msgs, dedup.Message{Body: body})
		want = append(want, env.EventID)
	}
	msgs = append(msgs, msgs[1]) // a duplicate within the batch
	out, err := p.Process(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.calls) != 1 || fmt.Sprint(h.calls[0]) != fmt.Sprint(want) || len(h.runs) != 0 {
		t.Fatalf("batch calls %v and %d single calls; want one call with %v", h.calls, len(h.runs), want)
	}
	if out[4].Result != dedup.Duplicate {
		t.Fatalf("repeated message: %v", out[4].Result)
	}

	h2 := &batchRecorder{recorder: newRecorder(), fail: true}
	p2 := newProcessor(t, dedup.ProcessorConfig{Handler: h2})
	out, err = p2.Process(context.Background(), msgs[:4])
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Result != dedup.Handled || h2.count(want[i]) != 1 {
			t.Fatalf("message %d after the batch failed: %v, %d single runs", i, o.Result, h2.count(want[i]))
		}
	}
}
