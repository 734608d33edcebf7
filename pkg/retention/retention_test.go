package retention_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/retention"
)

// insertProcessed adds n processed_messages rows of consumer, processed
// age ago.
func insertProcessed(t *testing.T, pool *pgxpool.Pool, consumer string, n int, age time.Duration) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO processed_messages (consumer_name, event_id, processed_at)
		SELECT $1, gen_random_uuid(), now() - $3::bigint * interval '1 microsecond' FROM generate_series(1, $2)`,
		consumer, n, age.Microseconds())
	if err != nil {
		t.Fatal(err)
	}
}

func countProcessed(t *testing.T, pool *pgxpool.Pool, where string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM processed_messages WHERE `+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Pins §12: a run deletes every expired row in bounded batches while
// writers keep adding rows, and touches none of theirs; the rows are
// counted in the metrics.
func TestPrunerUnderConcurrentWrites(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	ctx := context.Background()
	insertProcessed(t, db.Pool, "old", 20000, 2*time.Hour)

	reg := prometheus.NewRegistry()
	p, err := retention.New(retention.Config{
		Tables: []retention.Table{dedup.NewPostgres(db.Pool).RetentionTable(time.Hour, 500)},
		DB:     db.Pool, Component: "test", Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}

	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.Pool.Exec(ctx, `INSERT INTO processed_messages (consumer_name, event_id) VALUES ('new', $1)`, uuid.New()); err != nil {
					t.Error(err)
					return
				}
				written.Add(1)
			}
		}()
	}
	res, err := p.RunOnce(ctx)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped || res.Pruned["processed_messages"] != 20000 {
		t.Fatalf("result %+v, want 20000 processed_messages rows pruned", res)
	}
	if n := countProcessed(t, db.Pool, "consumer_name = 'old'"); n != 0 {
		t.Errorf("%d expired rows left", n)
	}
	if n, w := countProcessed(t, db.Pool, "consumer_name = 'new'"), written.Load(); int64(n) != w || w == 0 {
		t.Errorf("%d fresh rows left of %d written", n, w)
	}
	if got := metricValue(t, reg, "messagekit_test_pruned_rows_total"); got != 20000 {
		t.Errorf("pruned_rows_total = %v, want 20000", got)
	}
	if got := metricValue(t, reg, "messagekit_test_prune_last_success_timestamp_seconds"); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success timestamp %v is not recent", got)
	}
}

// metricValue sums the values of the series of the metric name in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return v
}

// Pins "one active instance across replicas": while one pruner runs, a
// second on the same database skips its run; once the first is done the
// second takes its turn; and the rows are deleted once, whoever deletes
// them.
func TestTwoPrunersRace(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	ctx := context.Background()
	insertProcessed(t, db.Pool, "old", 5000, 2*time.Hour)

	store := dedup.NewPostgres(db.Pool)
	inside, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	table := store.RetentionTable(time.Hour, 100)
	slow := retention.Table{Name: table.Name, Prune: func(ctx context.Context) (int64, error) {
		if calls.Add(1) == 1 {
			close(inside)
			<-release
		}
		return table.Prune(ctx)
	}}
	newPruner := func() *retention.Pruner {
		p, err := retention.New(retention.Config{Tables: []retention.Table{slow}, DB: db.Pool, LockName: t.Name()})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first, second := newPruner(), newPruner()

	done := make(chan retention.Result, 1)
	go func() {
		res, err := first.RunOnce(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	<-inside
	res, err := second.RunOnce(ctx)
	if err != nil || !res.Skipped {
		t.Fatalf("second pruner while the first runs: %+v, %v; want skipped", res, err)
	}
	close(release)
	res1 := <-done
	res2, err := second.RunOnce(ctx)
	if err != nil || res2.Skipped {
		t.Fatalf("second pruner after the first: %+v, %v; want a run", res2, err)
	}
	if total := res1.Pruned["processed_messages"] + res2.Pruned["processed_messages"]; total != 5000 {
		t.Errorf("pruned %d + %d rows, want 5000 in all", res1.Pruned["processed_messages"], res2.Pruned["processed_messages"])
	}

	// Many runs racing for real: every expired row deleted exactly once.
	insertProcessed(t, db.Pool, "old", 3000, 2*time.Hour)
	var total atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := newPruner()
			for range 5 {
				res, err := p.RunOnce(ctx)
				if err != nil {
					t.Error(err)
				}
				total.Add(res.Pruned["processed_messages"])
			}
		}()
	}
	wg.Wait()
	if total.Load() != 3000 || countProcessed(t, db.Pool, "true") != 0 {
		t.Errorf("racing pruners deleted %d rows, %d left; want 3000 and none", total.Load(), countProcessed(t, db.Pool, "true"))
	}
}

// childEnv names the database a child process of TestPrunerKilledMidBatch
// prunes.
const childEnv = "RETENTION_TEST_CHILD_DATABASE_URL"

func TestMain(m *testing.M) {
	if url := os.Getenv(childEnv); url != "" {
		os.Exit(child(url))
	}
	os.Exit(m.Run())
}

// child prunes processed_messages of the database at url, 1000 rows a
// batch, until it is killed.
func child(url string) int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, err := retention.New(retention.Config{
		Tables: []retention.Table{dedup.NewPostgres(pool).RetentionTable(time.Hour, 1000)}, DB: pool,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := p.RunOnce(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// Pins what a crash costs: a pruner process killed in the middle of a
// batch leaves whole batches deleted and the interrupted one not at all,
// releases its lock with its session, and the next run deletes the rest.
func TestPrunerKilledMidBatch(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	ctx := context.Background()
	insertProcessed(t, db.Pool, "old", 5000, 2*time.Hour)
	insertProcessed(t, db.Pool, "new", 100, 0)
	// A batch of 1000 takes about 2 s, so the kill lands inside one.
	if _, err := db.Pool.Exec(ctx, `
		CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(0.002); RETURN OLD; END $$;
		CREATE TRIGGER slow_delete BEFORE DELETE ON processed_messages FOR EACH ROW EXECUTE FUNCTION slow_delete();`); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+db.URL)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	activeDeletes := func() int {
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state = 'active' AND query LIKE 'DELETE FROM processed_messages%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Kill it in its second batch: one is committed, one is half done.
	testenv.WaitFor(t, 30*time.Second, "a first batch committed", func() bool {
		return countProcessed(t, db.Pool, "consumer_name = 'old'") < 5000
	})
	testenv.WaitFor(t, 10*time.Second, "a second batch deleting", func() bool { return activeDeletes() == 1 })
	time.Sleep(500 * time.Millisecond) // well inside the 2 s batch
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	// The server finds the client gone once the statement ends, and rolls
	// the batch back.
	testenv.WaitFor(t, 30*time.Second, "the killed pruner's batch to roll back", func() bool {
		return activeDeletes() == 0
	})
	left := countProcessed(t, db.Pool, "consumer_name = 'old'")
	if left%1000 != 0 || left == 0 || left == 5000 {
		t.Fatalf("%d expired rows left after the kill: want whole batches of 1000 deleted, some but not all", left)
	}

	if _, err := db.Pool.Exec(ctx, `DROP TRIGGER slow_delete ON processed_messages`); err != nil {
		t.Fatal(err)
	}
	p, err := retention.New(retention.Config{
		Tables: []retention.Table{dedup.NewPostgres(db.Pool).RetentionTable(time.Hour, 1000)}, DB: db.Pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.RunOnce(ctx)
	if err != nil || res.Skipped || res.Pruned["processed_messages"] != int64(left) {
		t.Fatalf("the next run: %+v, %v; want %d rows pruned, not skipped", res, err, left)
	}
	if n := countProcessed(t, db.Pool, "consumer_name = 'new'"); n != 100 {
		t.Errorf("%d of 100 fresh rows left", n)
	}
}

// New refuses what cannot run.
func TestNewValidates(t *testing.T) {
	prune := func(context.Context) (int64, error) { return 0, nil }
	for name, cfg := range map[string]retention.Config{
		"no tables":      {},
		"unnamed table":  {Tables: []retention.Table{{Prune: prune}}},
		"no function":    {Tables: []retention.Table{{Name: "t"}}},
		"duplicate name": {Tables: []retention.Table{{Name: "t", Prune: prune}, {Name: "t", Prune: prune}}},
		"negative":       {Tables: []retention.Table{{Name: "t", Prune: prune}}, Interval: -time.Second},
	} {
		if _, err := retention.New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
