package e2e

import (
	"context"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/stack"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// Environment of TestServerFaults, for `make test-faults`.
const (
	// faultRoundsVariable is how many rounds to run; the default runs each
	// fault once.
	faultRoundsVariable = "E2E_FAULT_ROUNDS"
	// faultSeedVariable replays a run: its seed is printed first.
	faultSeedVariable = "E2E_FAULT_SEED"
)

// fault is one way a server fails, healed before fault returns.
type fault struct {
	name string
	// notice names the processes that must log a warning while it lasts:
	// they hold connections the fault breaks, or their /readyz, polled
	// meanwhile, checks the server. (The example producer and consumer
	// answer 503 on /readyz but log only a failed request or batch, which
	// an idle moment does not have.)
	notice []string
	inject func(t *testing.T, r *rig, rng *rand.Rand)
}

// pause sleeps a random time in [lo, hi).
func pause(rng *rand.Rand, lo, hi time.Duration) {
	time.Sleep(lo + time.Duration(rng.Int64N(int64(hi-lo))))
}

var faults = []fault{
	{"RabbitMQ kill -9 and restart", []string{"bridge", "consumer", "dlq-bookkeeper"}, func(t *testing.T, r *rig, rng *rand.Rand) {
		r.own.rabbit.Kill()
		pause(rng, 0, 2*time.Second)
		if err := r.own.rabbit.Start(); err != nil {
			t.Fatal(err)
		}
	}},
	{"RabbitMQ stop_app and start_app", []string{"bridge", "consumer", "dlq-bookkeeper"}, func(t *testing.T, r *rig, rng *rand.Rand) {
		if err := r.own.rabbit.StopApp(); err != nil {
			t.Fatal(err)
		}
		pause(rng, 0, 2*time.Second)
		if err := r.own.rabbit.StartApp(); err != nil {
			t.Fatal(err)
		}
	}},
	{"PostgreSQL immediate shutdown and restart", []string{"bridge", "dlq-bookkeeper", "admin-api"}, func(t *testing.T, r *rig, rng *rand.Rand) {
		if err := r.own.pg.Stop("immediate"); err != nil {
			t.Fatal(err)
		}
		pause(rng, 0, 3*time.Second)
		if err := r.own.pg.Start(); err != nil {
			t.Fatal(err)
		}
	}},
	{"kfake stopped and restarted from its data directory", nil, func(t *testing.T, r *rig, rng *rand.Rand) {
		r.own.kafka.Stop()
		pause(rng, 0, 3*time.Second)
		if err := r.own.kafka.Start(); err != nil {
			t.Fatal(err)
		}
	}},
	{"bridge-RabbitMQ path stalled", nil, func(t *testing.T, r *rig, rng *rand.Rand) {
		r.own.bridgeAMQP.Stall()
		pause(rng, 500*time.Millisecond, 5*time.Second)
		r.own.bridgeAMQP.Resume()
	}},
	{"bridge-RabbitMQ connection reset", []string{"bridge"}, func(t *testing.T, r *rig, rng *rand.Rand) {
		r.own.bridgeAMQP.Drop()
	}},
	{"bridge-RabbitMQ path 20-200 ms slower", nil, func(t *testing.T, r *rig, rng *rand.Rand) {
		r.own.bridgeAMQP.SetLatency(20*time.Millisecond + time.Duration(rng.IntN(180))*time.Millisecond)
		pause(rng, time.Second, 4*time.Second)
		r.own.bridgeAMQP.SetLatency(0)
	}},
	{"bridge-PostgreSQL path stalled", nil, func(t *testing.T, r *rig, rng *rand.Rand) {
		r.own.bridgePG.Stall()
		pause(rng, 500*time.Millisecond, 5*time.Second)
		r.own.bridgePG.Resume()
	}},
	{"bridge-PostgreSQL connections reset, new ones refused", []string{"bridge"}, func(t *testing.T, r *rig, rng *rand.Rand) {
		r.own.bridgePG.SetRefuse(true)
		r.own.bridgePG.Drop()
		pause(rng, 500*time.Millisecond, 3*time.Second)
		r.own.bridgePG.SetRefuse(false)
	}},
	{"bridge-PostgreSQL path 20-200 ms slower", nil, func(t *testing.T, r *rig, rng *rand.Rand) {
		r.own.bridgePG.SetLatency(20*time.Millisecond + time.Duration(rng.IntN(180))*time.Millisecond)
		pause(rng, time.Second, 4*time.Second)
		r.own.bridgePG.SetLatency(0)
	}},
}

// TestServerFaults runs the pipeline, as processes, on servers of its own
// and in each round writes a few hundred events while one server fails at
// a random moment: RabbitMQ killed or its application stopped, PostgreSQL
// shut down immediately, kfake stopped, or the bridge's path to RabbitMQ or
// PostgreSQL stalled, reset or slowed. Rounds take the faults in turn, in
// an order and at moments drawn from a seed printed first
// (E2E_FAULT_SEED replays it; E2E_FAULT_ROUNDS sets the number of rounds,
// one per fault by default). After every round: nothing lost, nothing
// handled twice, every order's lines handled in line order, every process
// still running (no restart) and ready, and the processes whose
// connections the fault broke said so in their logs. Half the rounds run
// with classic queues, half with quorum queues (at-least-once
// dead-lettering into a quorum dead-letter queue).
func TestServerFaults(t *testing.T) {
	rounds := len(faults)
	if v := os.Getenv(faultRoundsVariable); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			t.Fatalf("%s=%q: want a number from 2", faultRoundsVariable, v)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(faultSeedVariable); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned number", faultSeedVariable, v)
		}
		seed = s
	}
	t.Logf("seed %d (%s=%d replays this run)", seed, faultSeedVariable, seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	order := rng.Perm(len(faults))
	// Half the rounds on classic queues, half on quorum queues; the faults
	// in one order across both, so that each is met once by default.
	for i, queueType := range []string{"classic", "quorum"} {
		first, n := i*(rounds/2), rounds/2+i*(rounds%2)
		sub := rand.New(rand.NewPCG(seed, uint64(3+i)))
		t.Run(queueType, func(t *testing.T) {
			serverFaultRounds(t, queueType, sub, order, first, n, rounds > len(faults))
		})
	}
}

// serverFaultRounds runs rounds first to first+n-1 of TestServerFaults
// on one pipeline whose queues are of queueType.
func serverFaultRounds(t *testing.T, queueType string, rng *rand.Rand, order []int, first, n int, long bool) {
	r := newRig(t, rigOptions{own: true, rejectFraction: 0.01, env: traceEnv, queueType: queueType})
	ctx := context.Background()
	orders, lines := 30, 9 // 300 events a round, over about 3 s
	if long {
		orders = 60 // make test-faults: longer rounds
	}
	var written int64
	injected := map[string]int{}
	for round := first; round < first+n; round++ {
		f := faults[order[round%len(faults)]]
		load := &stack.Load{Addr: r.p.Producer.Addr, Workers: 4, Rate: 100, Retry: true}
		loadErr := make(chan error, 1)
		go func() { loadErr <- load.Run(ctx, orders, lines) }()

		// The fault, at a random moment of the round's load.
		mark := int64((0.1 + 0.7*rng.Float64()) * float64(orders*(1+lines)))
		testenv.WaitFor(t, 3*time.Minute, "the load to pass its mark", func() bool { return load.Written.Load() >= mark })
		logSizes := map[string]int64{}
		for _, proc := range r.p.All() {
			logSizes[proc.Name] = fileSize(proc.Log)
		}
		start, at := time.Now(), load.Written.Load()
		// /readyz is polled while the fault lasts, as an orchestrator
		// would: the binaries log a dependency that is not ready.
		probing := make(chan struct{})
		probed := make(chan struct{})
		go func() {
			defer close(probed)
			for {
				for _, proc := range r.p.All() {
					proc.Ready(ctx)
				}
				select {
				case <-probing:
					return
				case <-time.After(250 * time.Millisecond):
				}
			}
		}()
		f.inject(t, r, rng)
		close(probing)
		<-probed
		injected[f.name]++
		t.Logf("round %d: %s at %d events written, over after %s", round+1, f.name, at, time.Since(start).Round(time.Millisecond))

		if err := <-loadErr; err != nil {
			t.Fatalf("round %d: load: %v", round+1, err)
		}
		written += int64(orders * (1 + lines))
		sum := r.waitSummary(3*time.Minute, "every event consumed or dead-lettered", func(s stack.Summary) bool {
			return s.Written >= written && s.Missing == 0
		})
		if sum.ConsumedTwice != 0 {
			t.Errorf("round %d (%s): %d events handled more than once", round+1, f.name, sum.ConsumedTwice)
		}
		if inversions, checked := orderInversions(t, r); inversions != 0 {
			t.Errorf("round %d (%s): %d of %d events handled before an earlier line of their order", round+1, f.name, inversions, checked)
		}
		for _, proc := range r.p.All() {
			if !proc.Running() {
				t.Fatalf("round %d (%s): %s exited: %v", round+1, f.name, proc.Name, proc.ExitErr())
			}
			if code, body := proc.Ready(ctx); code != http.StatusOK {
				if _, err := proc.WaitReady(ctx, time.Minute); err != nil {
					t.Errorf("round %d (%s): %s not ready again: %d %s", round+1, f.name, proc.Name, code, body)
				}
			}
		}
		for _, name := range f.notice {
			proc := procNamed(r, name)
			if said := warnings(proc.Log, logSizes[name]); len(said) == 0 {
				t.Errorf("round %d (%s): %s logged no warning while it lasted", round+1, f.name, name)
			} else {
				t.Logf("  %s said: %s", name, said[0])
			}
		}
		if t.Failed() {
			break
		}
	}
	sum, _ := r.obs.Summary(ctx)
	t.Logf("%s queues: %d rounds, faults injected: %v\n%s", queueType, n, injected, sum)
}

func procNamed(r *rig, name string) *stack.Proc {
	for _, proc := range r.p.All() {
		if proc.Name == name {
			return proc
		}
	}
	panic("no process " + name)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// warnings returns the warning and error lines of a log written after
// offset.
func warnings(path string, offset int64) []string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b[offset:]), "\n") {
		if strings.Contains(line, `"msg":"dead-lettering message"`) { // the simulated failures, not the fault
			continue
		}
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	return out
}
