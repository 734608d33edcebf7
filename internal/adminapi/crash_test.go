package adminapi_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// crashHelperVariable runs TestCrashHelperProcess as the admin API that
// is killed.
const crashHelperVariable = "MESSAGEKIT_ADMINAPI_CRASH_HELPER"

// TestMain runs the test binary as the admin API that
// TestKilledBetweenClaimAndPublish kills, when crashHelperVariable is set.
func TestMain(m *testing.M) {
	if os.Getenv(crashHelperVariable) != "" {
		crashHelper()
		return
	}
	os.Exit(m.Run())
}

// crashHelper serves the API on the database and broker the environment
// names, prints its address, and on the first claim prints "claimed" and
// blocks until it is killed.
func crashHelper() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash helper:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("MK_DB"))
	if err != nil {
		fail(err)
	}
	store, _ := deadletter.New(pool)
	pub := adminapi.NewAMQPPublisher(os.Getenv("MK_AMQP"), "adminapi crash helper")
	api, err := adminapi.New(adminapi.Config{DeadLetters: store, DB: pool, Token: token, Queues: pub})
	if err != nil {
		fail(err)
	}
	adminapi.SetAfterClaim(api, func() {
		fmt.Println("claimed")
		select {}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	fmt.Println(l.Addr().String())
	fail(http.Serve(l, api))
}

// TestKilledBetweenClaimAndPublish pins DESIGN.md §6's recovery: the admin
// API killed with SIGKILL after it claimed dead letters and before it
// published them leaves them claimed (another replay skips them); once the
// claim timeout has passed they are pending again, the release is logged
// and audited, and a replay publishes every one of them.
func TestKilledBetweenClaimAndPublish(t *testing.T) {
	t.Parallel()
	const n, timeout = 50, 2 * time.Second
	b := testenv.RabbitMQ(t)
	e := newEnv(t, withQueues(t, b), func(c *adminapi.Config) { c.ClaimTimeout = timeout })
	ch := b.Channel(t)
	q := declareQueue(t, ch, b.Name("crash"), nil)
	recordMany(t, e, q, n)

	helper := exec.Command(os.Args[0])
	helper.Env = append(os.Environ(), crashHelperVariable+"=1", "MK_DB="+e.db.URL, "MK_AMQP="+b.URL)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- strings.TrimSpace(sc.Text())
		}
		close(lines)
	}()
	next := func(want func(string) bool) string {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("the helper process ended")
				}
				if want(l) {
					return l
				}
			case <-deadline:
				t.Fatal("the helper process said nothing for 30 s")
			}
		}
	}
	addr := next(func(l string) bool { _, _, err := net.SplitHostPort(l); return err == nil })
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/dead-letters/replay",
			strings.NewReader(fmt.Sprintf(`{"queue":%q,"limit":1000}`, q)))
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}()
	next(func(l string) bool { return l == "claimed" })
	if err := helper.Process.Kill(); err != nil { // SIGKILL: no defer, no clean-up runs
		t.Fatal(err)
	}
	_ = helper.Wait()
	killedAt := time.Now()

	var claimed int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT count(*) FROM dead_letters WHERE claim_id IS NOT NULL AND status = 'pending'`).Scan(&claimed); err != nil {
		t.Fatal(err)
	}
	if claimed != n {
		t.Fatalf("%d rows claimed after the kill, want %d", claimed, n)
	}
	// Within the timeout another replay skips them.
	if r := e.post(t, "/api/v1/dead-letters/replay", fmt.Sprintf(`{"queue":%q,"limit":1000}`, q)); r.status != http.StatusOK ||
		!strings.Contains(string(r.body), `"replayed_count":0`) || time.Since(killedAt) >= timeout {
		t.Fatalf("replay while claimed: %d %s (%v after the kill)", r.status, r.body, time.Since(killedAt))
	}
	time.Sleep(timeout - time.Since(killedAt) + 100*time.Millisecond)
	r := e.post(t, "/api/v1/dead-letters/replay", fmt.Sprintf(`{"queue":%q,"limit":1000}`, q))
	if r.status != http.StatusOK || !strings.Contains(string(r.body), fmt.Sprintf(`"replayed_count":%d`, n)) {
		t.Fatalf("replay after the timeout: %d %s", r.status, r.body)
	}
	testenv.WaitFor(t, 10*time.Second, "every replay in the queue", func() bool { return queueDepth(t, ch, q) == n })
	var releases, released int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT count(*), coalesce(sum(done_count), 0) FROM admin_actions
		WHERE action = $1 AND principal = $2`, adminapi.ActionReleaseClaims, adminapi.SystemPrincipal).Scan(&releases, &released); err != nil {
		t.Fatal(err)
	}
	if releases != 1 || released != n {
		t.Errorf("audit: %d claims.release rows releasing %d, want 1 and %d", releases, released, n)
	}
}
