package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/demurhq/demur/natsbus"
)

// benchSpec is the seed experiment scaled to half: the same agents and
// section size, 800 sections (about 2M words).
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

// BenchmarkDistributed runs the scaled seed experiment in one process
// (embedded bus) and across a coordinator and three `demur agent` worker
// processes (on a NATS server embedded in the benchmark), and reports each
// mode's throughput per wall second and per CPU second of every process
// involved, the NATS server's included:
//
//	go test -run '^$' -bench Distributed -benchtime 1x ./cmd/demur/
func BenchmarkDistributed(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "demur")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build demur: %v\n%s", err, out)
	}
	perCPU := map[string]float64{}
	for _, mode := range []string{"single", "workers3"} {
		b.Run(mode, func(b *testing.B) {
			for i := range b.N {
				r := benchOnce(b, bin, mode, int64(1000+i))
				b.ReportMetric(r.sections/r.wall, "sections/s")
				b.ReportMetric(r.words/r.wall, "words/s")
				b.ReportMetric(r.sections/r.cpu, "sections/cpu-s")
				b.ReportMetric(r.words/r.cpu, "words/cpu-s")
				b.ReportMetric(r.cpu/r.wall, "cores")
				perCPU[mode] = r.words / r.cpu
			}
		})
	}
	if perCPU["single"] > 0 && perCPU["workers3"] > 0 {
		b.Logf("distributed per-core throughput is %.0f%% of single-process", 100*perCPU["workers3"]/perCPU["single"])
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

func benchOnce(b *testing.B, bin, mode string, seed int64) benchResult {
	b.Helper()
	dir := b.TempDir()
	spec := filepath.Join(dir, "job.yaml")
	name := "bench" + mode
	if err := os.WriteFile(spec, fmt.Appendf(nil, benchSpec, name, seed+time.Now().UnixNano()%1000000), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"run", spec, "--out", filepath.Join(dir, "out"), "--json"}
	var workers []*exec.Cmd
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
			workers = append(workers, w)
		}
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
	cpu := cpuOf(c.ProcessState)
	parts := fmt.Sprintf("coordinator %.2fs", cpu)
	for _, w := range workers {
		_ = w.Process.Signal(syscall.SIGTERM)
		_ = w.Wait()
		cpu += cpuOf(w.ProcessState)
		parts += fmt.Sprintf(", worker %.2fs", cpuOf(w.ProcessState))
	}
	if bus != nil {
		// The server ran in this process, which otherwise only waited.
		serverCPU += selfCPU()
		cpu += serverCPU
	}
	var sum runSummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil || sum.Status != "completed" {
		b.Fatalf("run: %v, status %q\n%s", err, sum.Status, stdout.String())
	}
	b.Logf("%s: %d sections, %d words in %.2fs wall, %.2fs CPU (%s, NATS server %.2fs)", mode, sum.SectionsDone, sum.Words, wall, cpu, parts, serverCPU)
	return benchResult{sections: float64(sum.SectionsDone), words: float64(sum.Words), wall: wall, cpu: cpu}
}
