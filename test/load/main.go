package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type options struct {
	modes           map[string]bool
	n               int
	flatN           int
	size            int
	produceBatch    int
	partitions      int
	batch           int
	batchWait       time.Duration
	rounds          int
	ceilingChannels int
	rate            float64
	duration        time.Duration
	warmup          time.Duration
	bridgePath      string
	dbURL           string
	dbQuery         string
	amqpURL         string
	jsonOut         bool
	profileDir      string
	keep            bool
	verbose         bool
	extraEnv        []string
	tmp             string
	catalog         string // "", "on" or "alternate"
	catalogDir      string
}

// report is everything one tool run measured; -json prints it.
type report struct {
	Started    time.Time       `json:"started"`
	Load1      string          `json:"load_average_at_start"`
	Records    int             `json:"records"`
	Size       int             `json:"record_bytes"`
	Partitions int             `json:"partitions"`
	Batch      int             `json:"batch_size"`
	Ceilings   []ceilingResult `json:"ceilings,omitempty"`
	Bridges    []bridgeResult  `json:"bridges,omitempty"`
	Rate       *rateResult     `json:"rate,omitempty"`
	// RateCeiling is the tool's own publisher at the same rate, just
	// before the bridge's fixed-rate run.
	RateCeiling *rateCeilingResult `json:"rate_ceiling,omitempty"`
	// Flat is peak RSS (VmHWM) at FlatN records over peak RSS at Records.
	FlatN     int     `json:"flat_records,omitempty"`
	FlatRatio float64 `json:"flat_rss_ratio,omitempty"`
	// PreloadSeconds is how long producing the records into kfake took,
	// per data set.
	PreloadSeconds map[string]float64 `json:"preload_seconds"`
	TotalSeconds   float64            `json:"total_seconds"`
}

type envList []string

func (l *envList) String() string { return strings.Join(*l, ",") }
func (l *envList) Set(s string) error {
	if !strings.Contains(s, "=") {
		return errors.New("want NAME=value")
	}
	*l = append(*l, s)
	return nil
}

func main() {
	o := &options{}
	var modes string
	var extra envList
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: go run ./test/load [flags]

Measures cmd/bridge as its own process against kfake (in-process),
PostgreSQL (TEST_DATABASE_URL) and RabbitMQ (TEST_AMQP_URL); see the
package doc (go doc ./test/load). Modes run in the order throughput, rate,
flat.

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&modes, "modes", "throughput,rate", "comma-separated modes: throughput, rate, flat")
	fs.IntVar(&o.n, "n", 100_000, "records of the throughput mode")
	fs.IntVar(&o.flatN, "flat-n", 1_000_000, "records of the flat mode's large run")
	fs.IntVar(&o.size, "size", 1024, "bytes of every record's value (a valid envelope)")
	fs.IntVar(&o.produceBatch, "produce-batch-bytes", 1_000_000, "the tool's Kafka producer's record batch limit (uncompressed, as outbox.Relay's sarama producer)")
	fs.IntVar(&o.partitions, "partitions", 8, "partitions of every topic (records are keyed by aggregate)")
	fs.IntVar(&o.batch, "batch", 500, "BRIDGE_BATCH_SIZE, and the ceiling's confirm batch per channel")
	fs.DurationVar(&o.batchWait, "batch-wait", -1, "BRIDGE_BATCH_WAIT (negative: the binary's default)")
	fs.IntVar(&o.rounds, "rounds", 1, "bridge runs of the throughput mode, each between two ceiling runs")
	fs.IntVar(&o.ceilingChannels, "ceiling-channels", 0, "channels of the RabbitMQ ceiling; 0 means -partitions (the bridge's one per partition)")
	fs.Float64Var(&o.rate, "rate", 5000, "records/s of the rate mode")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured duration of the rate mode")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured start of the rate mode, after the first record went through")
	fs.StringVar(&o.bridgePath, "bridge", "", "bridge binary; empty: go build ./cmd/bridge into a temporary directory")
	fs.StringVar(&o.dbURL, "db", envOr("TEST_DATABASE_URL", defaultDatabaseURL), "PostgreSQL server URL; a scratch database is created on it and dropped")
	fs.StringVar(&o.dbQuery, "db-query", "", "query parameters added to the bridge's DATABASE_URL, e.g. pool_max_conns=16")
	fs.StringVar(&o.amqpURL, "amqp", envOr("TEST_AMQP_URL", defaultAMQPURL), "RabbitMQ URL")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON after the table")
	fs.StringVar(&o.profileDir, "profile-dir", "", "write each bridge's CPU profile there (BRIDGE_CPU_PROFILE=<dir>/<run>.pprof)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (bridge logs, binary)")
	fs.BoolVar(&o.verbose, "v", false, "print progress every second")
	fs.StringVar(&o.catalog, "catalog", "", "validate against an event catalog (a schema of realistic size, strict mode): on for every bridge run, alternate for off, on, off, … over -rounds (a same-run comparison); records' data are then orders the schema accepts")
	fs.Var(&extra, "env", "extra NAME=value for the bridge (repeatable), e.g. -env LOG_LEVEL=warn")
	_ = fs.Parse(os.Args[1:])
	o.extraEnv = extra
	o.modes = map[string]bool{}
	for _, m := range strings.Split(modes, ",") {
		switch m = strings.TrimSpace(m); m {
		case "throughput", "rate", "flat":
			o.modes[m] = true
		case "":
		default:
			fmt.Fprintf(os.Stderr, "load: unknown mode %q\n", m)
			os.Exit(2)
		}
	}
	if o.n < 10 || o.partitions < 1 || o.batch < 1 || o.rounds < 1 || o.rate <= 0 || o.size < 1 || o.produceBatch < o.size+100 {
		fmt.Fprintln(os.Stderr, "load: -n ≥ 10, -partitions, -batch, -rounds, -rate and -size must be positive, -produce-batch-bytes larger than -size")
		os.Exit(2)
	}
	if o.catalog != "" && o.catalog != "on" && o.catalog != "alternate" {
		fmt.Fprintln(os.Stderr, "load: -catalog wants on or alternate")
		os.Exit(2)
	}
	if o.ceilingChannels == 0 {
		o.ceilingChannels = o.partitions
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) (err error) {
	began := time.Now()
	o.tmp, err = os.MkdirTemp("", "messagekit-load-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || err != nil {
			fmt.Fprintln(os.Stderr, "load: logs kept in", o.tmp)
			return
		}
		_ = os.RemoveAll(o.tmp)
	}()
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	if o.bridgePath == "" {
		if o.bridgePath, err = buildBridge(ctx, o.tmp); err != nil {
			return err
		}
	}
	e, err := setup(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	cons, err := startConsumer(e.amqpURL, e.queue)
	if err != nil {
		return err
	}
	defer cons.close()

	load, _ := os.ReadFile("/proc/loadavg")
	rep := &report{Started: began.UTC(), Load1: strings.TrimSpace(string(load)), Records: o.n, Size: o.size,
		Partitions: o.partitions, Batch: o.batch, PreloadSeconds: map[string]float64{}}
	gen := &envelopes{size: o.size, orders: o.catalog != ""}
	if o.catalog != "" {
		if o.catalogDir, err = writeCatalog(o.tmp); err != nil {
			return err
		}
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
	}

	var smallHWM float64
	if o.modes["throughput"] || o.modes["flat"] {
		t, err := e.newTopic("load-tp", o.partitions)
		if err != nil {
			return err
		}
		start := time.Now()
		bodies, err := preload(ctx, e.brokers, t, gen, o.n, o.produceBatch, o.modes["throughput"])
		if err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		rep.PreloadSeconds[fmt.Sprint(o.n)] = time.Since(start).Seconds()
		progress("preloaded %d records in %.1f s (per partition %v)", o.n, time.Since(start).Seconds(), t.counts)
		rounds := o.rounds
		if !o.modes["throughput"] {
			rounds = 1
		}
		for i := range rounds {
			if o.modes["throughput"] {
				c, err := publishCeiling(ctx, e, cons, bodies, o.ceilingChannels, o.batch)
				if err != nil {
					return err
				}
				rep.Ceilings = append(rep.Ceilings, c)
				progress("ceiling %d: %.0f records/s (arrivals), %.0f (publish to last confirm)", i+1, c.ArrivalRate, c.PublishRate)
			}
			name := fmt.Sprintf("bridge-%d", i+1)
			if o.catalog == "on" || (o.catalog == "alternate" && i%2 == 1) {
				name += catalogSuffix
			}
			b, err := runBridge(ctx, o, e, cons, t, name)
			if err != nil {
				return err
			}
			rep.Bridges = append(rep.Bridges, b)
			progress("bridge %d: %.0f records/s, %.1f µs CPU/record, VmHWM %.0f MB", i+1, b.Rate, b.CPUPerRecordUS, b.HWMMB)
			smallHWM = max(smallHWM, b.ExitHWMMB)
		}
		if o.modes["throughput"] {
			c, err := publishCeiling(ctx, e, cons, bodies, o.ceilingChannels, o.batch)
			if err != nil {
				return err
			}
			rep.Ceilings = append(rep.Ceilings, c)
			progress("ceiling %d: %.0f records/s (arrivals)", len(rep.Ceilings), c.ArrivalRate)
			for i := range rep.Bridges {
				mean := (rep.Ceilings[i].ArrivalRate + rep.Ceilings[i+1].ArrivalRate) / 2
				rep.Bridges[i].Ratio = rep.Bridges[i].Rate / mean
			}
		}
		if err := e.deleteTopic(t); err != nil {
			return err
		}
	}

	if o.modes["rate"] {
		rc, err := publishAtRate(ctx, o, e, cons, gen)
		if err != nil {
			return err
		}
		rep.RateCeiling = &rc
		progress("RabbitMQ alone at %.0f/s: p50 %.1f ms, p99 %.1f ms, max %.1f ms", o.rate, rc.P50MS, rc.P99MS, rc.MaxMS)
		r, err := runRate(ctx, o, e, cons, gen)
		if err != nil {
			return err
		}
		rep.Rate = &r
		progress("rate: p50 %.1f ms, p99 %.1f ms, max %.1f ms, %.1f µs CPU/record", r.P50MS, r.P99MS, r.MaxMS, r.CPUPerRecordUS)
	}

	if o.modes["flat"] {
		t, err := e.newTopic("load-flat", o.partitions)
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := preload(ctx, e.brokers, t, gen, o.flatN, o.produceBatch, false); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		rep.PreloadSeconds[fmt.Sprint(o.flatN)] = time.Since(start).Seconds()
		progress("preloaded %d records in %.1f s", o.flatN, time.Since(start).Seconds())
		b, err := runBridge(ctx, o, e, cons, t, "bridge-flat")
		if err != nil {
			return err
		}
		rep.Bridges = append(rep.Bridges, b)
		rep.FlatN = o.flatN
		if smallHWM > 0 {
			rep.FlatRatio = b.ExitHWMMB / smallHWM
		}
		progress("bridge over %d: %.0f records/s, peak RSS %.0f MB (%.2f× the %d run's)", o.flatN, b.Rate, b.ExitHWMMB, rep.FlatRatio, o.n)
		_ = e.deleteTopic(t)
	}
	rep.TotalSeconds = time.Since(began).Seconds()
	printTable(os.Stdout, rep)
	if o.catalog == "alternate" {
		printCatalogCost(os.Stdout, rep)
	}
	if n := cons.stray.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "load: %d deliveries arrived between measurements\n", n)
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return nil
}

func printTable(f *os.File, r *report) {
	fmt.Fprintf(f, "\n%d records of %d bytes, %d partitions, batch %d; load average at start %s\n\n",
		r.Records, r.Size, r.Partitions, r.Batch, r.Load1)
	w := tabwriter.NewWriter(f, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	if len(r.Ceilings) > 0 {
		fmt.Fprintln(w, "RabbitMQ ceiling\trecords/s (arrivals)\trecords/s (publish→confirm)\t")
		for i, c := range r.Ceilings {
			fmt.Fprintf(w, "C%d\t%.0f\t%.0f\t\n", i+1, c.ArrivalRate, c.PublishRate)
		}
		fmt.Fprintln(w)
	}
	if len(r.Bridges) > 0 {
		fmt.Fprintln(w, "bridge run\trecords\trecords/s\t/ceiling\tCPU µs/rec\t10–90 %\twhole life\tRSS 10 %\t50 %\t90 %\tVmHWM MB\tat exit\tstart s\tcommit s\tdups\t")
		for _, b := range r.Bridges {
			ratio := "—"
			if b.Ratio > 0 {
				ratio = fmt.Sprintf("%.1f %%", 100*b.Ratio)
			}
			fmt.Fprintf(w, "%s\t%d\t%.0f\t%s\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.2f\t%d\t\n", b.Name, b.Records, b.Rate, ratio,
				b.CPUPerRecordUS, b.CPUPerRecordInnerUS, b.CPULifeUS, b.RSS10MB, b.RSS50MB, b.RSS90MB, b.HWMMB, b.ExitHWMMB, b.StartupSeconds, b.CommitSeconds, b.Duplicates)
		}
		fmt.Fprintln(w)
	}
	_ = w.Flush()
	if c := r.RateCeiling; c != nil && r.Rate != nil {
		fmt.Fprintf(f, "RabbitMQ alone (the tool publishing) at %.0f/s: latency p50 %.1f ms, p99 %.1f, max %.1f\n", r.Rate.Rate, c.P50MS, c.P99MS, c.MaxMS)
	}
	if r.Rate != nil {
		x := r.Rate
		fmt.Fprintf(f, "fixed rate %.0f/s for %.0f s (%d produced, %d arrived, %.0f/s achieved): latency p50 %.1f ms, p90 %.1f, p99 %.1f, p99.9 %.1f, max %.1f (of which produce→Kafka ack p50 %.1f, p99 %.1f); bridge CPU %.1f µs/record (%.0f %% of a core), VmHWM %.0f MB (%.0f at exit), %d dups\n",
			x.Rate, x.Seconds, x.Produced, x.Arrived, x.Achieved, x.P50MS, x.P90MS, x.P99MS, x.P999MS, x.MaxMS, x.ProduceAckP50MS, x.ProduceAckP99MS, x.CPUPerRecordUS, x.CPUPercent, x.HWMMB, x.ExitHWMMB, x.Duplicates)
	}
	if r.FlatN > 0 && r.FlatRatio > 0 {
		fmt.Fprintf(f, "peak RSS (VmHWM through exit) at %d records / at %d records: %.2f×\n", r.FlatN, r.Records, r.FlatRatio)
	}
	for k, v := range r.PreloadSeconds {
		fmt.Fprintf(f, "preload of %s records: %.1f s\n", k, v)
	}
	fmt.Fprintf(f, "total %.0f s\n", r.TotalSeconds)
}
