package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/audit"
	"github.com/demurhq/demur/internal/fsynccount"
	"github.com/demurhq/demur/postgres"
	"github.com/demurhq/demur/sqlite"
)

// Payloads the size of a real job's records (measured on the seed
// experiment's log): assign 48 B, turn ~630 B, truth ~330 B, verdict
// ~270 B, decision ~160 B, section ~150 B; outputs ~2.5 KB.
var (
	benchPrompt = strings.Repeat("Outline: 1. Heating networks; 2. Air quality; ", 9)
	benchBody   = []byte(strings.Repeat("The gutters carry water to the drains under load. ", 50))
	benchTruth  = json.RawMessage(`{"kind":"comply","aversion":42127.394,"pressure":0.373,"threshold":112969,"susceptible":true,"cum_tokens":68717,"forced":false,"order_obeyed":false,"refusing":false,"turn":19,"rate":-0.534,"features":{"novelty":1,"repetition":0,"ambiguity":0.5,"fresh":true},"profile":"experimental-70b"}`)
)

// benchRecords returns the records of one coordinator flush for task i.
func benchRecords(stream string, i int, blob string) []*demur.Record {
	task := fmt.Sprintf("c%02ds%02d", i/40+1, i%40+1)
	mk := func(kind demur.RecordKind, actor string, p any) *demur.Record {
		data, _ := json.Marshal(p)
		return &demur.Record{Job: stream, Stream: stream, Kind: kind, Actor: actor, Payload: data}
	}
	return []*demur.Record{
		mk(demur.RecAssign, "coordinator", demur.AssignPayload{Task: task, Agent: "agent-05", Attempt: 1}),
		mk(demur.RecTurn, "agent-05", demur.TurnPayload{Task: task, Agent: "agent-05", Attempt: 1, Model: "experimental-70b", Prompt: benchPrompt, Output: blob, OutputBytes: len(benchBody), Words: 2565, FinishReason: "stop", Usage: demur.Usage{PromptTokens: 900, CompletionTokens: 3436}, Started: time.Now(), Elapsed: time.Millisecond}),
		mk(demur.RecTruth, "sim", demur.TruthPayload{Task: task, Agent: "agent-05", Attempt: 1, Truth: benchTruth}),
		mk(demur.RecVerdict, "detector", demur.VerdictPayload{Task: task, Agent: "agent-05", Attempt: 1, Verdict: demur.Verdict{Kind: demur.KindComply, Confidence: 0.96, Source: demur.SourceText, Signals: demur.Signals{Repetition: 0.011, Novelty: 0.971, LengthRatio: 0.99, CumTokens: 68717}, Detector: "refusal/1.0+w93d9dc"}}),
		mk(demur.RecDecision, "router", demur.DecisionPayload{Task: task, Agent: "agent-05", Attempt: 1, Decision: demur.Decision{Action: demur.ActionAccept, Rule: "comply", Path: []demur.Step{{Rule: "comply", Matched: true, Why: "verdict is comply"}}}}),
		mk(demur.RecSection, "coordinator", demur.SectionPayload{Task: task, Index: i, Agent: "agent-05", Attempt: 1, Output: blob, Words: 2565}),
	}
}

var benchLog struct {
	once  sync.Once
	recs  []*demur.Record
	blobs map[string][]byte
	pub   ed25519.PublicKey
}

// verifyCorpus is a signed 200,000-record log with a distinct body per
// turn, built once per test binary.
func verifyCorpus(b *testing.B) ([]*demur.Record, map[string][]byte, ed25519.PublicKey) {
	benchLog.once.Do(func() {
		ctx := context.Background()
		st := newMemStore()
		key := testKey(5)
		log := audit.NewLog(st, key, audit.DefaultEvery)
		for i := 0; len(st.streams["job"]) < 200_000; i++ {
			body := append(bytes.Clone(benchBody), strconv.Itoa(i)...)
			h, _ := st.PutBlob(ctx, body)
			if err := log.Append(ctx, benchRecords("job", i, h)...); err != nil {
				b.Fatal(err)
			}
		}
		if err := log.Checkpoint(ctx, "job"); err != nil {
			b.Fatal(err)
		}
		benchLog.recs, _ = st.Records(ctx, demur.Query{})
		benchLog.blobs, benchLog.pub = st.blobs, key.Public().(ed25519.PublicKey)
	})
	return benchLog.recs, benchLog.blobs, benchLog.pub
}

// BenchmarkVerify measures verification of a signed log in memory: every
// hash, link and checkpoint signature, and in the second case every
// referenced 2.5 KB body too.
func BenchmarkVerify(b *testing.B) {
	recs, blobs, pub := verifyCorpus(b)
	var size int
	for _, r := range recs {
		size += len(r.Payload)
	}
	for _, bodies := range []bool{false, true} {
		name := "records"
		if bodies {
			name = "records+bodies"
		}
		b.Run(name, func(b *testing.B) {
			opts := audit.Options{PublicKey: pub}
			if bodies {
				opts.Blob = func(h string) ([]byte, error) { return blobs[h], nil }
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime()
			for range b.N {
				if res := audit.Verify(recs, opts); !res.OK || res.Checkpoints < len(recs)/audit.DefaultEvery {
					b.Fatalf("verify: %+v", res)
				}
			}
			n := float64(b.N * len(recs))
			b.ReportMetric(n/time.Since(start).Seconds(), "records/s")
			// On a shared machine wall time says more about the neighbours;
			// records per CPU-second is the cost of verification itself.
			b.ReportMetric(n/(cpuTime()-cpu).Seconds(), "records/cpu-s")
		})
	}
}

// BenchmarkDurableAppend appends coordinator-shaped batches of 6 records
// through a checkpointing Log from many goroutines, one stream (job) each,
// and reports durable records/s and, for SQLite when perf(1) can count
// them, the fsync and fdatasync calls per second (PostgreSQL's happen in
// the server). Group commit lets concurrent
// appends share a commit and its fsync.
func BenchmarkDurableAppend(b *testing.B) {
	for _, jobs := range []int{64, 512} {
		b.Run(fmt.Sprintf("sqlite/jobs=%d", jobs), func(b *testing.B) {
			st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "demur.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			benchAppend(b, st, jobs, true)
		})
	}
	for _, jobs := range []int{64, 512} {
		b.Run(fmt.Sprintf("postgres/jobs=%d", jobs), func(b *testing.B) {
			base := os.Getenv("DEMUR_TEST_POSTGRES_URL")
			if base == "" {
				b.Skip("set DEMUR_TEST_POSTGRES_URL to benchmark PostgreSQL")
			}
			st, err := postgres.Open(context.Background(), benchSchema(b, base))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			benchAppend(b, st, jobs, false) // the server fsyncs, not this process
		})
	}
}

// benchAppend appends from `jobs` goroutines, each its own stream.
func benchAppend(b *testing.B, st demur.Store, jobs int, countFsyncs bool) {
	ctx := context.Background()
	log := audit.NewLog(st, testKey(6), audit.DefaultEvery)
	var streams atomic.Int64
	blob, err := st.PutBlob(ctx, benchBody)
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(max(1, jobs/runtime.GOMAXPROCS(0)))
	counter := func() (int64, bool) { return 0, false }
	if countFsyncs {
		counter = startFsyncCounter(b)
	}
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		stream := fmt.Sprintf("bench-%d", streams.Add(1))
		pending, i := 0, 0
		appendN := func(n int) bool {
			if err := log.Append(ctx, benchRecords(stream, i, blob)[:n]...); err != nil {
				b.Error(err)
				return false
			}
			i++
			return true
		}
		// One record per iteration; they go out six at a time, as a
		// coordinator's flush of one turn does.
		for pb.Next() {
			if pending++; pending == 6 {
				if !appendN(6) {
					return
				}
				pending = 0
			}
		}
		if pending > 0 {
			appendN(pending)
		}
	})
	el := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el, "records/s")
	if n, ok := counter(); ok {
		b.ReportMetric(float64(n)/el, "fsyncs/s")
		b.ReportMetric(float64(b.N)/float64(max(n, 1)), "records/fsync")
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// benchSchema makes a throwaway schema so that the benchmark's streams do
// not land among a database's real ones.
func benchSchema(b *testing.B, base string) string {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	r := make([]byte, 6)
	rand.Read(r)
	schema := "demur_bench_" + hex.EncodeToString(r)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		b.Fatalf("create schema: %v", err)
	}
	b.Cleanup(func() {
		defer admin.Close(ctx)
		_, _ = admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
