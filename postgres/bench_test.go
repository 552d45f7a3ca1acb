package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/demurhq/demur"
)

var payload300 = []byte(`{"task":"t-0042","agent":"writer-3","verdict":"refusal","class":"policy","confidence":0.93,"action":"reroute","to":"writer-5","reason":"` + strings.Repeat("x", 140) + `"}`)

func benchRecord(i int) *demur.Record {
	return &demur.Record{Job: "bench", Stream: fmt.Sprint("task-", i%8), Kind: demur.RecDecision, Actor: "router", Payload: payload300}
}

// BenchmarkAppend is one caller appending one record at a time.
func BenchmarkAppend(b *testing.B) {
	s := open(b, schemaURL(b))
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := s.Append(ctx, benchRecord(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkAppendParallel has many callers; group commit shares commits.
func BenchmarkAppendParallel(b *testing.B) {
	s := open(b, schemaURL(b))
	ctx := context.Background()
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := s.Append(ctx, benchRecord(i)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}
