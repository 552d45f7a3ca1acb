package otel_test

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/otel"
)

// replay returns the spans a fresh tracer makes of recs.
func replay(t *testing.T, recs []*demur.Record) []sdktrace.ReadOnlySpan {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr := otel.New(otel.Options{}, sdktrace.WithSyncer(exp))
	defer tr.Shutdown(context.Background())
	tr.Observe(recs)
	flush(t, tr)
	return exp.GetSpans().Snapshots()
}

// copyRecs appends recs to st as a writer would: the store numbers them
// again, from where the stream is.
func copyRecs(t *testing.T, st demur.Store, recs []*demur.Record) {
	t.Helper()
	for _, r := range recs {
		c := &demur.Record{Time: r.Time, Job: r.Job, Stream: r.Stream, Kind: r.Kind, Actor: r.Actor, Payload: r.Payload}
		if err := st.Append(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFollowExportsWhatIsAppended: `demur serve --otlp` follows a store
// others write. A job that had ended before it started is left alone; one
// half written is primed, and only the spans its second half completes are
// exported, the workflow span among them with its real start; a job that
// starts later is exported whole; and every span is the one the job's own
// process would have made.
func TestFollowExportsWhatIsAppended(t *testing.T) {
	src := openStore(t)
	var jobs [3]string
	for i := range jobs {
		jobs[i] = runJob(t, src, strings.Replace(spec, "seed: 7", "seed: "+string(rune('1'+i)), 1))
	}
	read := func(job string) []*demur.Record {
		recs, err := src.Records(context.Background(), demur.Query{Stream: job})
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	ended, running, later := read(jobs[0]), read(jobs[1]), read(jobs[2])
	half := len(running) / 2

	st := openStore(t)
	copyRecs(t, st, ended)
	copyRecs(t, st, running[:half])
	exp := tracetest.NewInMemoryExporter()
	tr := otel.New(otel.Options{}, sdktrace.WithSyncer(exp))
	defer tr.Shutdown(context.Background())
	poll := otel.PollOnce(tr, st)
	if err := poll(true); err != nil {
		t.Fatal(err)
	}
	flush(t, tr)
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("the first poll exported %d spans of what was there before it", n)
	}
	copyRecs(t, st, running[half:])
	copyRecs(t, st, later)
	if err := poll(false); err != nil {
		t.Fatal(err)
	}
	flush(t, tr)

	got := summary(exp.GetSpans().Snapshots())
	full, firstHalf := replay(t, running), replay(t, running[:half])
	want := map[string]bool{}
	for _, s := range summary(full) {
		want[s] = true
	}
	for _, s := range summary(firstHalf) {
		delete(want, s) // exported by the process that wrote them
	}
	for _, s := range summary(replay(t, later)) {
		want[s] = true
	}
	if len(got) != len(want) {
		t.Fatalf("exported %d spans, want %d", len(got), len(want))
	}
	for _, s := range got {
		if !want[s] {
			t.Fatalf("exported a span its job's own process would not have made:\n%s", s)
		}
	}
	root := false
	for _, s := range exp.GetSpans().Snapshots() {
		if s.Name() == "invoke_workflow "+jobs[1] && s.StartTime().Equal(running[0].Time) {
			root = true
		}
	}
	if !root {
		t.Error("the primed job's workflow span is missing or lost its start")
	}
}
