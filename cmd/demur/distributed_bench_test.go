package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/demurhq/demur/natsbus"
)

// benchSpec is the seed experiment: the same agents, sections and section
// size (1,600 sections, about 4.2M words).
const benchSpec = `name: %s
seed: %d
document:
  title: The Atlas of Everyday Infrastructure
  chapters: 40
  sections_per_chapter: 40
  words_per_section: 2600
agents:
  - {count: 8, backend: sim, profile: experimental-70b}
policy: {retire_after: 2, min_confidence: 0.5}
`

// BenchmarkDistributed runs the seed experiment in one process (embedded
// bus) and across a coordinator and three `demur agent` worker processes
// (on a NATS server embedded in the benchmark), and reports each mode's
// throughput per wall second and per CPU second of every process involved,
// the NATS server's included:
//
//	go test -run '^$' -bench Distributed -benchtime 1x ./cmd/demur/
//
// It builds demur from this tree, unless DEMUR_BENCH_BIN names a demur
// binary to run instead (to compare two builds on one machine).
//
// Both modes run the same seeds, so they do the same work: the same
// sections, refusals and redos. `demur run` is charged whole, start-up and
// shutdown included, in both modes. The NATS server and the workers are
// standing infrastructure that serves job after job: they are charged from
// the moment the job starts (the workers have joined and gone idle) until
// the workers have released its agents; the workers' start-up and stop are
// logged apart. (The server's share includes this process's own polling,
// which only overcharges distributed mode.)
func BenchmarkDistributed(b *testing.B) {
	bin := os.Getenv("DEMUR_BENCH_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "demur")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("build demur: %v\n%s", err, out)
		}
	}
	seed := 1000 + time.Now().UnixNano()%1000000
	single := map[int64]float64{} // words per CPU second, by seed
	for _, mode := range []string{"single", "workers3"} {
		b.Run(mode, func(b *testing.B) {
			for i := range b.N {
				r := benchOnce(b, bin, mode, seed+int64(i))
				b.ReportMetric(r.sections/r.wall, "sections/s")
				b.ReportMetric(r.words/r.wall, "words/s")
				b.ReportMetric(r.sections/r.cpu, "sections/cpu-s")
				b.ReportMetric(r.words/r.cpu, "words/cpu-s")
				b.ReportMetric(r.cpu/r.wall, "cores")
				if mode == "single" {
					single[seed+int64(i)] = r.words / r.cpu
				} else if s := single[seed+int64(i)]; s > 0 {
					b.Logf("per-core throughput is %.0f%% of single-process on seed %d", 100*r.words/r.cpu/s, seed+int64(i))
				}
			}
		})
	}
}

type benchResult struct{ sections, words, wall, cpu float64 }

func cpuOf(ps *os.ProcessState) float64 {
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}

func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// waitWorkers waits until n workers have written their heartbeat: they
// have connected, opened the buckets and are watching for jobs.
func waitWorkers(b *testing.B, bus *natsbus.Bus, n int) {
	waitKeys(b, bus, natsbus.WorkersBucket, fmt.Sprintf("%d workers joined", n), func(keys []string) bool { return len(keys) >= n })
}

// waitReleased waits until no worker holds a lease on one of job's agents.
func waitReleased(b *testing.B, bus *natsbus.Bus, job string) {
	waitKeys(b, bus, natsbus.LeasesBucket, "the job's agents released", func(keys []string) bool {
		for _, k := range keys {
			if strings.HasPrefix(k, job+".") && k != job+"._coordinator" {
				return false
			}
		}
		return true
	})
}

// waitKeys polls bucket's keys until done says so, for up to 30 s.
func waitKeys(b *testing.B, bus *natsbus.Bus, bucket, what string, done func([]string) bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := bus.KeyValue(ctx, bucket)
	if err != nil {
		b.Fatal(err)
	}
	for {
		keys, _ := kv.Keys(ctx) // an empty bucket is an error
		if done(keys) {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatalf("not %s after 30s (%s: %v)", what, bucket, keys)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func benchOnce(b *testing.B, bin, mode string, seed int64) benchResult {
	b.Helper()
	dir := b.TempDir()
	spec := filepath.Join(dir, "job.yaml")
	name := "bench" + mode
	if err := os.WriteFile(spec, fmt.Appendf(nil, benchSpec, name, seed), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"run", spec, "--out", filepath.Join(dir, "out"), "--json"}
	var workers []*exec.Cmd
	var boot []time.Duration // each worker's CPU when the job starts
	var bus *natsbus.Bus
	serverCPU := 0.0
	if mode != "single" {
		var err error
		bus, err = natsbus.Embedded(context.Background(), natsbus.EmbeddedOptions{Listen: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		defer bus.Close()
		url := bus.ClientURL()
		args = append(args, "--nats", url)
		for i := range 3 {
			w := exec.Command(bin, "agent", "--nats", url, "--quiet", "--name", fmt.Sprintf("bench-w%d", i))
			if err := w.Start(); err != nil {
				b.Fatal(err)
			}
			defer w.Process.Kill() // a no-op once it has exited
			workers = append(workers, w)
		}
		waitWorkers(b, bus, len(workers))
		// A worker's first claim pass follows its heartbeat; let it end, so
		// that it counts as start-up rather than as the job's.
		time.Sleep(100 * time.Millisecond)
		boot = workersCPU(b, workers)
		serverCPU = -selfCPU()
	}
	b.ResetTimer()
	start := time.Now()
	var stdout, stderr bytes.Buffer
	c := exec.Command(bin, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	wall := time.Since(start).Seconds()
	b.StopTimer()
	if err != nil {
		b.Fatalf("demur run: %v\n%s", err, stderr.String())
	}
	var sum runSummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil || sum.Status != "completed" {
		b.Fatalf("run: %v, status %q\n%s", err, sum.Status, stdout.String())
	}
	cpu := cpuOf(c.ProcessState)
	parts := fmt.Sprintf("coordinator %.2fs", cpu)
	if bus != nil {
		// The job is over for the standing infrastructure once the workers
		// have let its agents go; their own shutdown is not the job's.
		waitReleased(b, bus, sum.JobID)
		stopping := 0.0
		for i, t := range workersCPU(b, workers) {
			cpu += (t - boot[i]).Seconds()
			parts += fmt.Sprintf(", worker %.2fs", (t - boot[i]).Seconds())
			stopping -= t.Seconds()
		}
		// The server ran in this process, which otherwise only waited.
		serverCPU += selfCPU()
		cpu += serverCPU
		for _, w := range workers {
			_ = w.Process.Signal(syscall.SIGTERM)
			_ = w.Wait()
			stopping += cpuOf(w.ProcessState)
		}
		parts += fmt.Sprintf(", NATS server %.2fs; the workers' start-up (%.2fs) and stop (%.2fs) apart", serverCPU, sumSeconds(boot), stopping)
	}
	b.Logf("%s, seed %d: %d sections, %d words in %.2fs wall, %.2fs CPU (%s)", mode, seed, sum.SectionsDone, sum.Words, wall, cpu, parts)
	return benchResult{sections: float64(sum.SectionsDone), words: float64(sum.Words), wall: wall, cpu: cpu}
}

// workersCPU reads each worker's CPU time so far from /proc, in clock
// ticks (10 ms): differences of two readings are unbiased.
func workersCPU(b *testing.B, workers []*exec.Cmd) []time.Duration {
	b.Helper()
	out := make([]time.Duration, len(workers))
	for i, w := range workers {
		t, err := procCPU(w.Process.Pid)
		if err != nil {
			b.Fatalf("worker CPU: %v", err)
		}
		out[i] = t
	}
	return out
}

func sumSeconds(ds []time.Duration) float64 {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s.Seconds()
}
