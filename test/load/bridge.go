package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bridgeResult is one bridge process's figures.
type bridgeResult struct {
	Name    string `json:"name"`
	Records int    `json:"records"`
	// Rate is records over first to last arrival at the consumer.
	Rate float64 `json:"records_per_s"`
	// Seconds is first to last arrival; StartupSeconds is process start
	// to first arrival (joining the group, the first fetch and batch).
	Seconds        float64 `json:"seconds"`
	StartupSeconds float64 `json:"startup_seconds"`
	// CommitSeconds is last arrival to every offset committed.
	CommitSeconds float64 `json:"commit_seconds"`
	// CPUPerRecordUS is the child's CPU time from the first to the last
	// arrival over the records that arrived in between; the inner figure is
	// the same from the 10 % to the 90 % arrival, away from both edges.
	CPUPerRecordUS      float64 `json:"cpu_us_per_record"`
	CPUPerRecordInnerUS float64 `json:"cpu_us_per_record_10_90"`
	// CPULifeUS is the rusage CPU at exit over the records: start-up,
	// group join and shutdown included, an upper bound.
	CPULifeUS float64 `json:"cpu_us_per_record_whole_life"`
	// HWMMB is VmHWM once every offset was committed, just before SIGTERM;
	// ExitHWMMB the last VmHWM read during the graceful shutdown.
	HWMMB     float64 `json:"vm_hwm_mb"`
	ExitHWMMB float64 `json:"vm_hwm_at_exit_mb"`
	// RSS10MB, RSS50MB and RSS90MB are VmRSS when 10 %, 50 % and 90 % of
	// the records had arrived: a resident set that grows with the records
	// shows here.
	RSS10MB    float64 `json:"vm_rss_at_10pct_mb"`
	RSS50MB    float64 `json:"vm_rss_at_50pct_mb"`
	RSS90MB    float64 `json:"vm_rss_at_90pct_mb"`
	Duplicates int     `json:"duplicates"`
	// Ratio is Rate over the mean arrival rate of the ceilings measured
	// just before and just after this run.
	Ratio float64 `json:"ratio_to_ceiling,omitempty"`
}

// bridgeVars is the bridge's configuration for one run.
func (o *options) bridgeVars(e *env, t *topic, group, name string) []string {
	dbURL := e.dbURL
	if o.dbQuery != "" {
		sep := "?"
		if strings.Contains(dbURL, "?") {
			sep = "&"
		}
		dbURL += sep + o.dbQuery
	}
	vars := []string{
		"DATABASE_URL=" + dbURL,
		"KAFKA_BROKERS=" + e.brokers[0],
		"KAFKA_TOPICS=" + t.name,
		"KAFKA_GROUP_ID=" + group,
		"AMQP_URL=" + e.amqpURL,
		"AMQP_EXCHANGE=" + e.exchange,
		"AMQP_DLX=" + e.dlx,
		"HTTP_ADDR=127.0.0.1:0",
		"BRIDGE_BATCH_SIZE=" + strconv.Itoa(o.batch),
		"SHUTDOWN_TIMEOUT=60s",
	}
	if o.batchWait >= 0 {
		vars = append(vars, "BRIDGE_BATCH_WAIT="+o.batchWait.String())
	}
	if strings.HasSuffix(name, catalogSuffix) {
		// Strict: a record the catalog refused would never arrive, so a
		// finished run shows that every record was validated and passed.
		vars = append(vars, "EVENT_CATALOG_PATH="+o.catalogDir, "EVENT_CATALOG_STRICT_MODE=true")
	}
	if o.profileDir != "" {
		vars = append(vars, "BRIDGE_CPU_PROFILE="+filepath.Join(o.profileDir, name+".pprof"))
	}
	return append(vars, o.extraEnv...)
}

// cpuMark is the child's CPU time and resident set when a number of
// records had arrived.
type cpuMark struct {
	n      int
	cpu    time.Duration
	rssKiB int64
}

// runBridge starts a bridge in a new consumer group over the records of t
// (already produced), waits until every record arrived and every offset is
// committed, and stops it.
func runBridge(ctx context.Context, o *options, e *env, cons *consumer, t *topic, name string) (bridgeResult, error) {
	res := bridgeResult{Name: name, Records: t.total}
	n := t.total
	cnt := newCounter(n)
	cnt.topic = t.name
	cnt.thresholds = slices.Compact([]int{1, max(1, n/10), max(1, n/2), max(1, n*9/10), n})
	var mu sync.Mutex
	var marks []cpuMark
	var running atomic.Pointer[child] // set once started; arrivals before that are not ours
	cnt.onMark = func(k int) {
		c := running.Load()
		if c == nil {
			return
		}
		cpu, err := c.cpu()
		if err != nil {
			return
		}
		rss, _, _ := c.memory()
		mu.Lock()
		marks = append(marks, cpuMark{k, cpu, rss})
		mu.Unlock()
	}
	group := "load-" + name + "." + randomHex(4)
	cons.set(cnt)
	defer cons.set(nil)
	c, err := startBridge(o.bridgePath, o.bridgeVars(e, t, group, name), filepath.Join(o.tmp, name+".log"))
	if err != nil {
		return res, err
	}
	running.Store(c)
	defer func() {
		if c.alive() == nil {
			_, _ = c.stop(time.Minute)
		}
	}()
	limit := 10*time.Minute + time.Duration(n)*time.Millisecond // ≥ 1k records/s, or something is wrong
	deadline := time.After(limit)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-cnt.done:
			break wait
		case <-tick.C:
			if err := c.alive(); err != nil {
				return res, err
			}
			if o.verbose {
				k, d, _, _ := cnt.snapshot()
				fmt.Printf("  %s: %d/%d arrived, %d duplicates\n", name, k, n, d)
			}
		case <-deadline:
			k, _, _, _ := cnt.snapshot()
			return res, fmt.Errorf("%s: %d of %d records arrived within %s; log: %s", name, k, n, limit, c.logPath)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	lastArrival := time.Now()
	for {
		ok, err := e.committedToEnd(group, t)
		if err != nil {
			return res, err
		}
		if ok {
			break
		}
		if time.Since(lastArrival) > time.Minute {
			return res, fmt.Errorf("%s: offsets not committed to the end within a minute of the last arrival", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.CommitSeconds = time.Since(lastArrival).Seconds()
	_, hwm, err := c.memory()
	if err != nil {
		return res, err
	}
	st, err := c.stop(2 * time.Minute)
	if err != nil {
		return res, err
	}
	_, dups, first, last := cnt.snapshot()
	res.Duplicates = dups
	res.Seconds = last.Sub(first).Seconds()
	res.StartupSeconds = first.Sub(c.started).Seconds()
	if res.Seconds > 0 {
		res.Rate = float64(n-1) / res.Seconds
	}
	mu.Lock()
	defer mu.Unlock()
	perRecord := func(a, b cpuMark) float64 {
		if b.n <= a.n {
			return 0
		}
		return float64((b.cpu - a.cpu).Microseconds()) / float64(b.n-a.n)
	}
	if len(marks) >= 2 {
		res.CPUPerRecordUS = perRecord(marks[0], marks[len(marks)-1])
	}
	if len(marks) == 5 {
		res.CPUPerRecordInnerUS = perRecord(marks[1], marks[3])
		res.RSS10MB, res.RSS50MB, res.RSS90MB = float64(marks[1].rssKiB)/1024, float64(marks[2].rssKiB)/1024, float64(marks[3].rssKiB)/1024
	}
	res.CPULifeUS = float64(st.cpu.Microseconds()) / float64(n)
	res.HWMMB = float64(hwm) / 1024
	res.ExitHWMMB = float64(st.hwmKiB) / 1024
	return res, nil
}
