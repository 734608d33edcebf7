package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// rateResult is the fixed-rate mode's figures.
type rateResult struct {
	Rate float64 `json:"offered_records_per_s"`
	// Produced is the records produced in the measured window (after the
	// warm-up); Arrived those of them that arrived.
	Produced int     `json:"produced"`
	Arrived  int     `json:"arrived"`
	Achieved float64 `json:"produced_records_per_s"`
	Seconds  float64 `json:"seconds"`
	P50MS    float64 `json:"p50_ms"`
	P90MS    float64 `json:"p90_ms"`
	P99MS    float64 `json:"p99_ms"`
	P999MS   float64 `json:"p999_ms"`
	MaxMS    float64 `json:"max_ms"`
	// ProduceAck* are the produce call to Kafka's acknowledgement: the part
	// of the latency before the bridge could see the record.
	ProduceAckP50MS float64 `json:"produce_ack_p50_ms"`
	ProduceAckP99MS float64 `json:"produce_ack_p99_ms"`
	CPUPerRecordUS  float64 `json:"cpu_us_per_record"`
	// CPUPercent is the child's CPU over the window, in % of one core.
	CPUPercent float64 `json:"cpu_percent"`
	HWMMB      float64 `json:"vm_hwm_mb"`
	ExitHWMMB  float64 `json:"vm_hwm_at_exit_mb"`
	Duplicates int     `json:"duplicates"`
}

// runRate starts a bridge on a new topic, waits until a probe record went
// through, then produces at o.rate records/s for o.warmup plus o.duration
// and measures the latency of the records produced after the warm-up:
// arrival at the consumer minus occurredAt, stamped just before the
// produce.
func runRate(ctx context.Context, o *options, e *env, cons *consumer, gen *envelopes) (rateResult, error) {
	res := rateResult{Rate: o.rate}
	t, err := e.newTopic("load-rate", o.partitions)
	if err != nil {
		return res, err
	}
	cnt := newCounter(0)
	cnt.topic = t.name
	cnt.withLat = true
	cnt.from = time.Now().Add(24 * time.Hour) // set below
	cons.set(cnt)
	defer cons.set(nil)
	group := "load-rate." + randomHex(4)
	c, err := startBridge(o.bridgePath, o.bridgeVars(e, t, group, "rate"), filepath.Join(o.tmp, "rate.log"))
	if err != nil {
		return res, err
	}
	defer func() {
		if c.alive() == nil {
			_, _ = c.stop(time.Minute)
		}
	}()
	prod, err := newProducer(e.brokers, 0, o.produceBatch)
	if err != nil {
		return res, err
	}
	defer prod.Close()
	var produced atomic.Int64
	var produceErr atomic.Pointer[error]
	var ackMu sync.Mutex
	var acks []time.Duration // produce call to Kafka's ack, of the measured window
	// send produces record seq stamped now and reports whether the stamp
	// falls in the measured window (at or after from).
	var from time.Time
	send := func(seq int) (bool, error) {
		now := time.Now()
		env, value, err := gen.make(seq, now)
		if err != nil {
			return false, err
		}
		measured := !from.IsZero() && !now.Before(from)
		prod.Produce(ctx, record(t.name, env, value), func(_ *kgo.Record, err error) {
			if err != nil {
				produceErr.CompareAndSwap(nil, &err)
				return
			}
			if measured {
				d := time.Since(now)
				ackMu.Lock()
				acks = append(acks, d)
				ackMu.Unlock()
			}
		})
		produced.Add(1)
		return measured, nil
	}

	// Probe: one record per partition-ish until the bridge delivers.
	seq := 0
	probeDeadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := send(seq); err != nil {
			return res, err
		}
		seq++
		if k, _, _, _ := cnt.snapshot(); k > 0 {
			break
		}
		if err := c.alive(); err != nil {
			return res, err
		}
		if time.Now().After(probeDeadline) {
			return res, fmt.Errorf("rate: nothing arrived within 2 minutes of starting the bridge; log: %s", c.logPath)
		}
		time.Sleep(200 * time.Millisecond)
	}

	start := time.Now()
	from = start.Add(o.warmup)
	end := from.Add(o.duration)
	cnt.mu.Lock()
	cnt.from = from
	cnt.mu.Unlock()
	var inWindow int
	var cpuFrom time.Duration
	fromSampled := false
	sent := 0
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for now := time.Now(); now.Before(end); now = time.Now() {
		if !fromSampled && !now.Before(from) {
			if cpuFrom, err = c.cpu(); err != nil {
				return res, err
			}
			fromSampled = true
		}
		want := int(o.rate * now.Sub(start).Seconds())
		for ; sent < want; sent++ {
			measured, err := send(seq)
			if err != nil {
				return res, err
			}
			if measured {
				inWindow++
			}
			seq++
		}
		if p := produceErr.Load(); p != nil {
			return res, *p
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.Seconds = time.Since(from).Seconds()
	res.Produced = inWindow
	res.Achieved = float64(inWindow) / res.Seconds
	if err := prod.Flush(ctx); err != nil {
		return res, err
	}
	total := int(produced.Load())
	catchUp := time.Now().Add(time.Minute)
	for {
		k, _, _, _ := cnt.snapshot()
		if k >= total {
			break
		}
		if time.Now().After(catchUp) {
			return res, fmt.Errorf("rate: %d of %d records arrived within a minute of the last produce", k, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cpuTo, err := c.cpu()
	if err != nil {
		return res, err
	}
	cpuWindow := time.Since(from)
	_, hwm, err := c.memory()
	if err != nil {
		return res, err
	}
	st, err := c.stop(2 * time.Minute)
	if err != nil {
		return res, err
	}
	cnt.mu.Lock()
	lat := slices.Clone(cnt.latencies)
	res.Duplicates = cnt.dups
	cnt.mu.Unlock()
	slices.Sort(lat)
	res.Arrived = len(lat)
	ackMu.Lock()
	slices.Sort(acks)
	if len(acks) > 0 {
		res.ProduceAckP50MS = float64(acks[len(acks)/2].Microseconds()) / 1000
		res.ProduceAckP99MS = float64(acks[min(len(acks)-1, len(acks)*99/100)].Microseconds()) / 1000
	}
	ackMu.Unlock()
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := min(len(lat)-1, int(q*float64(len(lat))))
		return float64(lat[i].Microseconds()) / 1000
	}
	res.P50MS, res.P90MS, res.P99MS, res.P999MS = pct(0.50), pct(0.90), pct(0.99), pct(0.999)
	if len(lat) > 0 {
		res.MaxMS = float64(lat[len(lat)-1].Microseconds()) / 1000
	}
	if inWindow > 0 {
		res.CPUPerRecordUS = float64((cpuTo - cpuFrom).Microseconds()) / float64(inWindow)
	}
	res.CPUPercent = 100 * (cpuTo - cpuFrom).Seconds() / cpuWindow.Seconds()
	res.HWMMB = float64(hwm) / 1024
	res.ExitHWMMB = float64(st.hwmKiB) / 1024
	return res, nil
}
