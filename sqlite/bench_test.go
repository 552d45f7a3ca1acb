package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/fsynccount"
	"github.com/demurhq/demur/sqlite"
)

// payload300 is a ~300 B JSON payload, the size of a typical decision record.
var payload300 = []byte(`{"task":"t-0042","agent":"writer-3","verdict":"refusal","class":"policy","confidence":0.93,"action":"reroute","to":"writer-5","reason":"` + strings.Repeat("x", 140) + `"}`)

func benchStore(b *testing.B) *sqlite.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func reportRate(b *testing.B, start time.Time, what string) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), what+"/s")
}

// reportFsyncs reports fsyncs/s and records/fsync from a counter started
// with startFsyncCounter, when perf could count them.
func reportFsyncs(b *testing.B, start time.Time, counter func() (int64, bool)) {
	el := time.Since(start).Seconds()
	if n, ok := counter(); ok {
		b.ReportMetric(float64(n)/el, "fsyncs/s")
		b.ReportMetric(float64(b.N)/float64(max(n, 1)), "records/fsync")
	}
}

// startFsyncCounter counts this process's fsyncs (internal/fsynccount);
// the metric is left out where perf cannot count.
func startFsyncCounter(b *testing.B) func() (int64, bool) {
	stop := fsynccount.Start()
	return func() (int64, bool) {
		n, ok, why := stop()
		if !ok {
			b.Logf("perf could not count fsyncs: %s", why)
		}
		return n, ok
	}
}

// BenchmarkAppend is one caller appending one record at a time: every
// Append pays a full commit and fsync.
func BenchmarkAppend(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		r := &demur.Record{Job: "bench", Stream: fmt.Sprint("task-", i%8), Kind: demur.RecDecision, Actor: "router", Payload: payload300}
		if err := s.Append(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start, "records")
}

// BenchmarkAppendParallel has many callers appending one record at a time;
// group commit lets queued callers share one fsync.
func BenchmarkAppendParallel(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.SetParallelism(8) // callers per CPU: a job has many agents in flight
	counter := startFsyncCounter(b)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r := &demur.Record{Job: "bench", Stream: fmt.Sprint("task-", i%8), Kind: demur.RecDecision, Actor: "router", Payload: payload300}
			if err := s.Append(ctx, r); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	reportRate(b, start, "records")
	reportFsyncs(b, start, counter)
}

// BenchmarkPutBlob stores distinct 2.5 KB bodies one at a time, the shape of
// turn outputs (a job writes ~25 MB of them).
func BenchmarkPutBlob(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	body := []byte(strings.Repeat("lorem ipsum dolor sit amet ", 100))
	b.SetBytes(int64(len(body) + 12))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := s.PutBlob(ctx, fmt.Appendf(body[:len(body):len(body)], "%012d", i)); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start, "blobs")
}

// BenchmarkJob is one job's worth of log traffic from a single caller:
// 10,000 records, a quarter of them turns whose 10 KB output goes in a
// blob first (~25 MB of blobs). It must stay far below the job's 30 s.
func BenchmarkJob(b *testing.B) {
	ctx := context.Background()
	out := []byte(strings.Repeat("output text ", 853)) // ~10 KB
	for range b.N {
		s := benchStore(b)
		for i := range 10_000 {
			r := &demur.Record{Job: "bench", Stream: fmt.Sprint("task-", i%40), Kind: demur.RecDecision, Actor: "router", Payload: payload300}
			if i%4 == 0 {
				h, err := s.PutBlob(ctx, fmt.Appendf(out[:len(out):len(out)], "%d", i))
				if err != nil {
					b.Fatal(err)
				}
				r.Kind, r.Payload = demur.RecTurn, fmt.Appendf(nil, `{"output":%q}`, h)
			}
			if err := s.Append(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
	}
}
