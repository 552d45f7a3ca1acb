package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/demurhq/demur"
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

// startFsyncCounter counts this process's fsync and fdatasync calls with
// perf(1) tracepoints; the returned function stops it and reports the count,
// or false when perf is unavailable (the metric is then left out).
func startFsyncCounter(b *testing.B) func() (int64, bool) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return func() (int64, bool) { return 0, false }
	}
	cmd := exec.Command(perf, "stat", "-x,", "-e", "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync", "-p", strconv.Itoa(os.Getpid()))
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return func() (int64, bool) { return 0, false }
	}
	time.Sleep(200 * time.Millisecond) // perf attaches to every thread before the loop
	return func() (int64, bool) {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		var n int64
		found := false
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			f := strings.Split(sc.Text(), ",")
			if len(f) > 2 && strings.HasPrefix(f[2], "syscalls:") {
				if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					n += v
					found = true
				}
			}
		}
		if !found {
			b.Logf("perf could not count fsyncs: %s", strings.TrimSpace(out.String()))
		}
		return n, found
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
