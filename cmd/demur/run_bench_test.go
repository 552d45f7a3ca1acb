package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
)

// BenchmarkSeedExperiment runs the whole seed experiment in-process, store
// written, and reports words per second. The goal: under 30 s on
// two cores.
//
//	go test -run '^$' -bench SeedExperiment -benchtime 1x ./cmd/demur
func BenchmarkSeedExperiment(b *testing.B) {
	spec := filepath.Join("..", "..", "examples", "seed-experiment.yaml")
	for i := 0; i < b.N; i++ {
		var out bytes.Buffer
		o := runOptions{seed: -1, out: b.TempDir(), json: true}
		if err := runJob(context.Background(), o, spec, &out, &bytes.Buffer{}); err != nil {
			b.Fatal(err)
		}
		var sum runSummary
		if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(sum.WordsPerSecond, "words/s")
		b.ReportMetric(sum.ElapsedSeconds, "s/run")
	}
}
