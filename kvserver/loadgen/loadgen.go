// Package loadgen drives a raft-kv cluster with N clients and reports
// throughput and latency percentiles per operation, from HDR histograms
// (1 µs to 60 s, 3 significant digits).
//
// Closed loop (Rate == 0): each of Clients workers sends its next request
// when the last one returns. Open loop (Rate > 0): requests are scheduled at
// Rate per second regardless of how fast they return, and latency counts
// from the scheduled time, so a stalled server shows up in the percentiles
// instead of silently slowing the load (coordinated omission).
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/raftlab/raftlab/kvserver/client"
)

// Config is one load run.
type Config struct {
	Endpoints []string
	// Clients is the number of concurrent workers (closed loop) or the
	// bound on requests in flight (open loop). Default 64.
	Clients int
	// Duration of the measured run; Warmup runs first, unmeasured.
	Duration, Warmup time.Duration
	// WriteRatio in [0, 1]: the share of puts; the rest are gets.
	WriteRatio float64
	// ValueSize in bytes (default 128); Keys is the key space (default 10000).
	ValueSize, Keys int
	// Rate: open-loop requests per second; 0 for closed loop.
	Rate float64
	// Seed makes the key and operation choices reproducible.
	Seed uint64
}

// OpStats are one operation's figures.
type OpStats struct {
	Count    int64   `json:"count"`
	Failed   int64   `json:"failed"`
	Unknown  int64   `json:"unknown"`
	PerSec   float64 `json:"per_sec"`
	MeanMs   float64 `json:"mean_ms"`
	P50Ms    float64 `json:"p50_ms"`
	P95Ms    float64 `json:"p95_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	hist     *hdrhistogram.Histogram
	okCount  int64
	errFirst error
}

// Report is a run's result.
type Report struct {
	Config    Config              `json:"config"`
	Elapsed   time.Duration       `json:"elapsed_ns"`
	OpsPerSec float64             `json:"ops_per_sec"`
	Ops       map[string]*OpStats `json:"ops"`
	// FirstError is the first failed or unknown call, for the reader.
	FirstError string `json:"first_error,omitempty"`
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

type worker struct {
	ops map[string]*OpStats
}

func (w *worker) record(op string, d time.Duration, err error) {
	s := w.ops[op]
	if s == nil {
		s = &OpStats{hist: newHist()}
		w.ops[op] = s
	}
	switch client.OutcomeOf(err) {
	case client.OK:
		s.okCount++
		_ = s.hist.RecordValue(max(1, d.Microseconds()))
	case client.Failed:
		s.Failed++
	case client.Unknown:
		s.Unknown++
	}
	if err != nil && s.errFirst == nil {
		s.errFirst = err
	}
}

// Run runs the load and reports. It returns an error only for bad input or
// when no operation at all succeeded.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if len(cfg.Endpoints) == 0 {
		return Report{}, errors.New("loadgen: no endpoints")
	}
	if cfg.WriteRatio < 0 || cfg.WriteRatio > 1 {
		return Report{}, fmt.Errorf("loadgen: write ratio %v is not in [0, 1]", cfg.WriteRatio)
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 64
	}
	if cfg.ValueSize <= 0 {
		cfg.ValueSize = 128
	}
	if cfg.Keys <= 0 {
		cfg.Keys = 10000
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	cl, err := client.New(cfg.Endpoints, client.Options{})
	if err != nil {
		return Report{}, err
	}
	defer cl.Close()
	value := make([]byte, cfg.ValueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	one := func(rng *rand.Rand, w *worker, scheduled time.Time) {
		key := fmt.Sprintf("key-%06d", rng.IntN(cfg.Keys))
		opctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if rng.Float64() < cfg.WriteRatio {
			_, err := cl.Put(opctx, key, value)
			if w != nil {
				w.record("put", time.Since(scheduled), err)
			}
		} else {
			_, _, err := cl.Get(opctx, key)
			if w != nil {
				w.record("get", time.Since(scheduled), err)
			}
		}
	}
	if cfg.Warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, cfg.Warmup)
		runPhase(wctx, cfg, func(rng *rand.Rand, _ *worker, t time.Time) { one(rng, nil, t) }, nil)
		cancel()
	}
	workers := make([]*worker, cfg.Clients)
	for i := range workers {
		workers[i] = &worker{ops: map[string]*OpStats{}}
	}
	start := time.Now()
	mctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	runPhase(mctx, cfg, one, workers)
	cancel()
	elapsed := time.Since(start)
	rep := Report{Config: cfg, Elapsed: elapsed, Ops: map[string]*OpStats{}}
	var total int64
	for _, w := range workers {
		for op, s := range w.ops {
			agg := rep.Ops[op]
			if agg == nil {
				agg = &OpStats{hist: newHist()}
				rep.Ops[op] = agg
			}
			agg.hist.Merge(s.hist)
			agg.okCount += s.okCount
			agg.Failed += s.Failed
			agg.Unknown += s.Unknown
			if agg.errFirst == nil {
				agg.errFirst = s.errFirst
			}
		}
	}
	for _, s := range rep.Ops {
		s.Count = s.okCount
		total += s.okCount
		s.PerSec = float64(s.okCount) / elapsed.Seconds()
		ms := func(v int64) float64 { return float64(v) / 1000 }
		s.MeanMs = s.hist.Mean() / 1000
		s.P50Ms, s.P95Ms = ms(s.hist.ValueAtQuantile(50)), ms(s.hist.ValueAtQuantile(95))
		s.P99Ms, s.MaxMs = ms(s.hist.ValueAtQuantile(99)), ms(s.hist.Max())
		if s.errFirst != nil && rep.FirstError == "" {
			rep.FirstError = s.errFirst.Error()
		}
	}
	rep.OpsPerSec = float64(total) / elapsed.Seconds()
	if total == 0 {
		return rep, fmt.Errorf("loadgen: no operation succeeded (first error: %s)", rep.FirstError)
	}
	return rep, nil
}

// runPhase runs workers until ctx ends: closed loop, or open loop at Rate.
func runPhase(ctx context.Context, cfg Config, one func(*rand.Rand, *worker, time.Time), workers []*worker) {
	var wg sync.WaitGroup
	get := func(i int) *worker {
		if workers == nil {
			return nil
		}
		return workers[i]
	}
	if cfg.Rate <= 0 {
		for i := 0; i < cfg.Clients; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
				for ctx.Err() == nil {
					one(rng, get(i), time.Now())
				}
			}(i)
		}
		wg.Wait()
		return
	}
	// Open loop: a schedule of send times; a free worker takes the next.
	sched := make(chan time.Time, cfg.Clients)
	for i := 0; i < cfg.Clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
			for t := range sched {
				one(rng, get(i), t)
			}
		}(i)
	}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	next := time.Now()
	for ctx.Err() == nil {
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		select {
		case sched <- next:
		case <-ctx.Done():
		}
		next = next.Add(interval)
	}
	close(sched)
	wg.Wait()
}

// Print writes the report as a table.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "%d clients, %.0f%% writes, %d-byte values, %v: %.0f ops/s\n",
		r.Config.Clients, r.Config.WriteRatio*100, r.Config.ValueSize, r.Elapsed.Round(time.Millisecond), r.OpsPerSec)
	ops := make([]string, 0, len(r.Ops))
	for op := range r.Ops {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	fmt.Fprintf(w, "%-4s %9s %9s %8s %8s %8s %8s %8s %7s %7s\n", "op", "count", "ops/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "failed", "unknown")
	for _, op := range ops {
		s := r.Ops[op]
		fmt.Fprintf(w, "%-4s %9d %9.0f %8.2f %8.2f %8.2f %8.2f %8.2f %7d %7d\n", op, s.Count, s.PerSec, s.MeanMs, s.P50Ms, s.P95Ms, s.P99Ms, s.MaxMs, s.Failed, s.Unknown)
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
}
