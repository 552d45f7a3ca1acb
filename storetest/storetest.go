// Package storetest is the conformance suite every demur.Store must pass.
// A store's tests call Run with a function that opens the store under test.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"pgregory.net/rapid"
)

// Opener opens the store under test. Every call with the same *testing.T
// must open the same storage, the first call finding it empty, so that the
// suite can close a store and reopen it. The opener should register a
// t.Cleanup that closes the store; Close must therefore tolerate being
// called twice.
type Opener func(t *testing.T) demur.Store

// PerTest memoizes create per test: the returned function calls create the
// first time it sees a given *testing.T and returns that result afterwards.
// It is the usual way to write an Opener: create makes the storage (a file
// path, a database schema) and the Opener opens it.
func PerTest[T any](create func(t *testing.T) T) func(t *testing.T) T {
	var (
		mu   sync.Mutex
		seen = map[*testing.T]T{}
	)
	return func(t *testing.T) T {
		mu.Lock()
		defer mu.Unlock()
		if v, ok := seen[t]; ok {
			return v
		}
		v := create(t)
		seen[t] = v
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			delete(seen, t)
		})
		return v
	}
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"RoundTrip", testRoundTrip},
		{"Chain", testChain},
		{"MultiRecordAppend", testMultiRecordAppend},
		{"Concurrent", testConcurrent},
		{"Query", testQuery},
		{"Blobs", testBlobs},
		{"AppendWithBlobs", testAppendWithBlobs},
		{"Reopen", testReopen},
		{"CanceledContext", testCanceled},
		{"ZeroRecords", testZeroRecords},
		{"RejectsBadRecords", testRejects},
		{"RandomInterleavings", testRandomInterleavings},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// VerifyStream checks that recs are one whole stream in order: seqs from 1
// without gaps, each PrevHash the previous Hash (empty for the first) and
// each Hash the record's computed hash. It names the first bad record.
func VerifyStream(recs []*demur.Record) error {
	prev := ""
	for i, r := range recs {
		if r.Stream != recs[0].Stream {
			return fmt.Errorf("record %d: stream %q, want %q", i, r.Stream, recs[0].Stream)
		}
		if r.Seq != int64(i+1) {
			return fmt.Errorf("%s record %d: seq %d, want %d", r.Stream, i, r.Seq, i+1)
		}
		if r.PrevHash != prev {
			return fmt.Errorf("%s/%d: prev_hash %q, want %q", r.Stream, r.Seq, r.PrevHash, prev)
		}
		if h := r.ComputeHash(); r.Hash != h {
			return fmt.Errorf("%s/%d: hash %q, computed %q", r.Stream, r.Seq, r.Hash, h)
		}
		prev = r.Hash
	}
	return nil
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t *testing.T, s demur.Store, recs ...*demur.Record) {
	t.Helper()
	if err := s.Append(ctxFor(t), recs...); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func mustRecords(t *testing.T, s demur.Store, q demur.Query) []*demur.Record {
	t.Helper()
	recs, err := s.Records(ctxFor(t), q)
	if err != nil {
		t.Fatalf("Records(%+v): %v", q, err)
	}
	return recs
}

func verify(t *testing.T, s demur.Store, stream string, want int) []*demur.Record {
	t.Helper()
	recs := mustRecords(t, s, demur.Query{Stream: stream})
	if len(recs) != want {
		t.Fatalf("stream %q has %d records, want %d", stream, len(recs), want)
	}
	if err := VerifyStream(recs); err != nil {
		t.Fatalf("stream %q: %v", stream, err)
	}
	return recs
}

func rec(stream string, kind demur.RecordKind, payload string) *demur.Record {
	return &demur.Record{Job: "job-1", Stream: stream, Kind: kind, Actor: "tester", Payload: []byte(payload)}
}

func testRoundTrip(t *testing.T, open Opener) {
	s := open(t)
	cet := time.FixedZone("CET", 3600)
	given := time.Date(2026, 3, 1, 12, 30, 45, 123456789, cet) // nanoseconds and a zone
	in := []*demur.Record{
		// Odd spacing and key order: a store that re-encodes JSON breaks it.
		{Job: "j", Stream: "a", Kind: demur.RecJobStart, Actor: "x", Payload: []byte(`{"b":1,  "a":[ 1.50, "\u00e9"] }`)},
		{Job: "j", Stream: "a", Kind: demur.RecTurn, Actor: "y", Payload: []byte("not json \x00\xff\xfe bytes"), Time: given},
		{Job: "j", Stream: "a", Kind: demur.RecVerdict, Actor: "", Payload: nil},
		{Job: "", Stream: "a", Kind: "", Actor: "z", Payload: []byte(strings.Repeat("0123456789", 30000))},
	}
	before := time.Now().UTC().Add(-time.Second)
	mustAppend(t, s, in[0])
	mustAppend(t, s, in[1], in[2])
	mustAppend(t, s, in[3])
	after := time.Now().UTC().Add(time.Second)

	for i, r := range in {
		if r.Seq != int64(i+1) {
			t.Errorf("in[%d].Seq = %d, want %d", i, r.Seq, i+1)
		}
		if r.Hash == "" || r.Hash != r.ComputeHash() {
			t.Errorf("in[%d].Hash = %q, want computed %q", i, r.Hash, r.ComputeHash())
		}
		if r.Time.IsZero() {
			t.Errorf("in[%d].Time not assigned", i)
		}
	}
	if !in[1].Time.Equal(given) {
		t.Errorf("given time changed: %v, want %v", in[1].Time, given)
	}
	for _, i := range []int{0, 2, 3} {
		if tm := in[i].Time; tm.Before(before) || tm.After(after) {
			t.Errorf("in[%d].Time = %v, not now", i, tm)
		}
		if tm := in[i].Time; tm.Location() != time.UTC || tm.Nanosecond()%1000 != 0 {
			t.Errorf("in[%d].Time = %v, want UTC with microsecond precision", i, tm)
		}
	}

	got := verify(t, s, "a", len(in))
	for i, g := range got {
		w := in[i]
		if !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("record %d payload = %q, want %q", i, trunc(g.Payload), trunc(w.Payload))
		}
		if a, b := g.Time.UTC().Format(time.RFC3339Nano), w.Time.UTC().Format(time.RFC3339Nano); a != b {
			t.Errorf("record %d time = %s, want %s", i, a, b)
		}
		if g.Job != w.Job || g.Stream != w.Stream || g.Kind != w.Kind || g.Actor != w.Actor ||
			g.Seq != w.Seq || g.PrevHash != w.PrevHash || g.Hash != w.Hash {
			t.Errorf("record %d = %+v\nwant %+v", i, brief(g), brief(w))
		}
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

func brief(r *demur.Record) string {
	return fmt.Sprintf("{%s/%d job=%q kind=%q actor=%q prev=%.8s hash=%.8s}", r.Stream, r.Seq, r.Job, r.Kind, r.Actor, r.PrevHash, r.Hash)
}

func testChain(t *testing.T, open Opener) {
	s := open(t)
	// Interleaved streams: each must count and chain on its own.
	for i := range 10 {
		mustAppend(t, s, rec("s1", demur.RecTurn, fmt.Sprintf(`{"i":%d}`, i)))
		if i%2 == 0 {
			mustAppend(t, s, rec("s2", demur.RecTurn, fmt.Sprintf(`{"i":%d}`, i)))
		}
	}
	r1 := verify(t, s, "s1", 10)
	r2 := verify(t, s, "s2", 5)
	if r1[0].PrevHash != "" || r2[0].PrevHash != "" {
		t.Errorf("first records have prev_hash %q, %q; want empty", r1[0].PrevHash, r2[0].PrevHash)
	}
	// Identical content in two streams must still hash apart (stream is hashed).
	if r1[0].Hash == r2[0].Hash {
		t.Errorf("records of different streams share hash %s", r1[0].Hash)
	}
}

func testMultiRecordAppend(t *testing.T, open Opener) {
	s := open(t)
	mustAppend(t, s, rec("a", demur.RecTurn, `1`))
	batch := []*demur.Record{
		rec("a", demur.RecTurn, `2`), rec("b", demur.RecTurn, `1`),
		rec("a", demur.RecTurn, `3`), rec("b", demur.RecTurn, `2`),
	}
	mustAppend(t, s, batch...)
	want := []int64{2, 1, 3, 2}
	for i, r := range batch {
		if r.Seq != want[i] {
			t.Errorf("batch[%d] (%s) seq = %d, want %d", i, r.Stream, r.Seq, want[i])
		}
	}
	if batch[2].PrevHash != batch[0].Hash {
		t.Errorf("second record of a in one call does not chain to the first")
	}
	for i, r := range verify(t, s, "a", 3) {
		if string(r.Payload) != fmt.Sprint(i+1) {
			t.Errorf("a/%d payload %q, want %d", r.Seq, r.Payload, i+1)
		}
	}
	verify(t, s, "b", 2)
}

func testConcurrent(t *testing.T, open Opener) {
	const goroutines, perG = 16, 200
	streams := []string{"c0", "c1", "c2"}
	s := open(t)
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := 0; i < perG; {
				st := streams[(g+i)%len(streams)]
				// Mostly single-record calls, some pairs, as a job does.
				n := 1
				if i%7 == 3 && i+1 < perG {
					n = 2
				}
				var recs []*demur.Record
				for k := range n {
					recs = append(recs, rec(st, demur.RecTurn, fmt.Sprintf(`{"g":%d,"i":%d}`, g, i+k)))
				}
				if err := s.Append(ctx, recs...); err != nil {
					errs <- fmt.Errorf("goroutine %d record %d: %w", g, i, err)
					return
				}
				i += n
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	seen := map[string]bool{}
	for _, st := range streams {
		recs := mustRecords(t, s, demur.Query{Stream: st})
		if err := VerifyStream(recs); err != nil {
			t.Fatalf("stream %s: %v", st, err)
		}
		last := map[int]int{} // goroutine -> last index seen in this stream
		for _, r := range recs {
			var g, i int
			if _, err := fmt.Sscanf(string(r.Payload), `{"g":%d,"i":%d}`, &g, &i); err != nil {
				t.Fatalf("%s/%d: payload %q: %v", st, r.Seq, r.Payload, err)
			}
			key := string(r.Payload)
			if seen[key] {
				t.Fatalf("%s/%d: payload %s written twice", st, r.Seq, key)
			}
			seen[key] = true
			if l, ok := last[g]; ok && i <= l {
				t.Errorf("%s/%d: goroutine %d record %d after its record %d", st, r.Seq, g, i, l)
			}
			last[g] = i
		}
		total += len(recs)
	}
	if total != goroutines*perG {
		t.Fatalf("%d records in all, want %d", total, goroutines*perG)
	}
}

func testQuery(t *testing.T, open Opener) {
	s := open(t)
	add := func(job, stream string, kind demur.RecordKind) {
		r := rec(stream, kind, `{}`)
		r.Job = job
		mustAppend(t, s, r)
	}
	// Written out of stream order, so ordering must come from the store.
	add("j1", "b", demur.RecTurn)     // b/1
	add("j1", "a", demur.RecJobStart) // a/1
	add("j1", "a", demur.RecTurn)     // a/2
	add("j2", "c", demur.RecTurn)     // c/1
	add("j1", "b", demur.RecVerdict)  // b/2
	add("j1", "a", demur.RecDecision) // a/3
	add("j1", "b", demur.RecTurn)     // b/3
	add("j2", "c", demur.RecJobEnd)   // c/2

	ids := func(recs []*demur.Record) string {
		var parts []string
		for _, r := range recs {
			parts = append(parts, fmt.Sprintf("%s/%d", r.Stream, r.Seq))
		}
		return strings.Join(parts, " ")
	}
	cases := []struct {
		q    demur.Query
		want string
	}{
		{demur.Query{}, "a/1 a/2 a/3 b/1 b/2 b/3 c/1 c/2"},
		{demur.Query{Job: "j1"}, "a/1 a/2 a/3 b/1 b/2 b/3"},
		{demur.Query{Job: "j2"}, "c/1 c/2"},
		{demur.Query{Job: "nope"}, ""},
		{demur.Query{Stream: "b"}, "b/1 b/2 b/3"},
		{demur.Query{Stream: "b", AfterSeq: 1}, "b/2 b/3"},
		{demur.Query{Stream: "b", AfterSeq: 3}, ""},
		{demur.Query{Kinds: []demur.RecordKind{demur.RecTurn}}, "a/2 b/1 b/3 c/1"},
		{demur.Query{Kinds: []demur.RecordKind{demur.RecVerdict, demur.RecDecision}}, "a/3 b/2"},
		{demur.Query{Job: "j1", Kinds: []demur.RecordKind{demur.RecTurn}}, "a/2 b/1 b/3"},
		{demur.Query{Limit: 3}, "a/1 a/2 a/3"},
		{demur.Query{Kinds: []demur.RecordKind{demur.RecTurn}, Limit: 2}, "a/2 b/1"},
		{demur.Query{Stream: "a", AfterSeq: 1, Limit: 1}, "a/2"},
		{demur.Query{Stream: "a", Kinds: []demur.RecordKind{demur.RecTurn}, AfterSeq: 2}, ""},
	}
	for _, c := range cases {
		if got := ids(mustRecords(t, s, c.q)); got != c.want {
			t.Errorf("Records(%+v) = %q, want %q", c.q, got, c.want)
		}
	}

	// Streams sort by bytes, not by a locale: the same order in every store.
	for _, st := range []string{"x-2", "X", "x1", "w"} {
		add("j3", st, demur.RecTurn)
	}
	if got, want := ids(mustRecords(t, s, demur.Query{Job: "j3"})), "X/1 w/1 x-2/1 x1/1"; got != want {
		t.Errorf("Records(job j3) = %q, want byte order %q", got, want)
	}
}

func testBlobs(t *testing.T, open Opener) {
	s := open(t)
	ctx := ctxFor(t)
	big := bytes.Repeat([]byte("blob\x00\xff"), 200_000)
	for _, data := range [][]byte{[]byte("hello"), {}, big} {
		h, err := s.PutBlob(ctx, data)
		if err != nil {
			t.Fatalf("PutBlob(%d bytes): %v", len(data), err)
		}
		if h != demur.BlobHash(data) {
			t.Fatalf("PutBlob hash = %s, want %s", h, demur.BlobHash(data))
		}
		h2, err := s.PutBlob(ctx, bytes.Clone(data))
		if err != nil || h2 != h {
			t.Fatalf("second PutBlob = %s, %v; want %s, nil", h2, err, h)
		}
		got, err := s.Blob(ctx, h)
		if err != nil {
			t.Fatalf("Blob(%s): %v", h, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("Blob(%s) = %d bytes, want %d", h, len(got), len(data))
		}
	}
	_, err := s.Blob(ctx, demur.BlobHash([]byte("never stored")))
	if !errors.Is(err, demur.ErrNotFound) {
		t.Fatalf("Blob(absent) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Blob(ctx, "not-a-hash"); !errors.Is(err, demur.ErrNotFound) {
		t.Fatalf("Blob(garbage) error = %v, want ErrNotFound", err)
	}
	// Concurrent puts of overlapping data must all succeed.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				if _, err := s.PutBlob(ctx, fmt.Appendf(nil, "shared %d", (g+i)%10)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent PutBlob: %v", err)
	}
	for i := range 10 {
		data := fmt.Appendf(nil, "shared %d", i)
		if got, err := s.Blob(ctx, demur.BlobHash(data)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Blob(shared %d) = %q, %v", i, got, err)
		}
	}
}

// testAppendWithBlobs: blobs and records written together, concurrently,
// each call settled on its own records; a bad call among good ones fails
// alone and writes none of its records.
func testAppendWithBlobs(t *testing.T, open Opener) {
	s := open(t)
	ctx := ctxFor(t)
	const calls = 24
	errs := make([]error, calls)
	recs := make([][]*demur.Record, calls)
	var wg sync.WaitGroup
	for i := range calls {
		recs[i] = []*demur.Record{rec("wb", demur.RecTurn, fmt.Sprintf(`{"call":%d}`, i)), rec("wb", demur.RecVerdict, fmt.Sprintf(`{"call":%d}`, i))}
		if i == 7 {
			recs[i][1].Actor = "nul\x00byte"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = demur.AppendWithBlobs(ctx, s, [][]byte{fmt.Appendf(nil, "output %d", i), []byte("shared")}, recs[i]...)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i == 7) {
			t.Fatalf("call %d: AppendWithBlobs = %v", i, err)
		}
		if i == 7 {
			continue
		}
		if recs[i][0].Seq == 0 || recs[i][1].Seq != recs[i][0].Seq+1 || recs[i][1].PrevHash != recs[i][0].Hash {
			t.Fatalf("call %d: records not settled in order: %s, %s", i, brief(recs[i][0]), brief(recs[i][1]))
		}
		if got, err := s.Blob(ctx, demur.BlobHash(fmt.Appendf(nil, "output %d", i))); err != nil || string(got) != fmt.Sprintf("output %d", i) {
			t.Fatalf("call %d: Blob = %q, %v", i, got, err)
		}
	}
	verify(t, s, "wb", 2*(calls-1))
	if err := demur.AppendWithBlobs(ctx, s, [][]byte{[]byte("alone"), nil}); err != nil {
		t.Fatalf("AppendWithBlobs(blobs only) = %v", err)
	}
	for _, data := range []string{"alone", ""} {
		if _, err := s.Blob(ctx, demur.BlobHash([]byte(data))); err != nil {
			t.Fatalf("Blob(%q) after a blobs-only call: %v", data, err)
		}
	}
	if err := demur.AppendWithBlobs(ctx, s, nil, rec("wb", demur.RecTurn, `1`)); err != nil {
		t.Fatalf("AppendWithBlobs(records only) = %v", err)
	}
	verify(t, s, "wb", 2*(calls-1)+1)
}

func testReopen(t *testing.T, open Opener) {
	s := open(t)
	for i := range 3 {
		mustAppend(t, s, rec("r", demur.RecTurn, fmt.Sprint(i)))
	}
	mustAppend(t, s, rec("other", demur.RecTurn, `x`))
	h, err := s.PutBlob(ctxFor(t), []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	last := mustRecords(t, s, demur.Query{Stream: "r"})[2]
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t)
	next := rec("r", demur.RecTurn, `3`)
	mustAppend(t, s, next)
	if next.Seq != 4 || next.PrevHash != last.Hash {
		t.Fatalf("after reopen: seq %d prev %.12s; want 4, %.12s", next.Seq, next.PrevHash, last.Hash)
	}
	mustAppend(t, s, rec("r", demur.RecTurn, `4`))
	verify(t, s, "r", 5)
	verify(t, s, "other", 1)
	if got, err := s.Blob(ctxFor(t), h); err != nil || string(got) != "kept" {
		t.Fatalf("blob after reopen = %q, %v", got, err)
	}
}

func testCanceled(t *testing.T, open Opener) {
	s := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := rec("x", demur.RecTurn, `{}`)
	if err := s.Append(ctx, r); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(canceled) = %v, want context.Canceled", err)
	}
	if r.Seq != 0 || r.Hash != "" {
		t.Errorf("failed Append changed the record: seq %d hash %q", r.Seq, r.Hash)
	}
	if _, err := s.PutBlob(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutBlob(canceled) = %v, want context.Canceled", err)
	}
	if _, err := s.Records(ctx, demur.Query{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Records(canceled) = %v, want context.Canceled", err)
	}
	if _, err := s.Blob(ctx, demur.BlobHash([]byte("x"))); err == nil {
		t.Fatalf("Blob(canceled) succeeded")
	}
	// Nothing was written, and the store still works.
	if recs := mustRecords(t, s, demur.Query{}); len(recs) != 0 {
		t.Fatalf("canceled Append wrote %d records", len(recs))
	}
	if _, err := s.Blob(ctxFor(t), demur.BlobHash([]byte("x"))); !errors.Is(err, demur.ErrNotFound) {
		t.Fatalf("canceled PutBlob stored the blob (Blob error %v)", err)
	}
	mustAppend(t, s, r)
	if r.Seq != 1 {
		t.Fatalf("Append after cancel: seq %d, want 1", r.Seq)
	}
}

func testZeroRecords(t *testing.T, open Opener) {
	s := open(t)
	if err := s.Append(ctxFor(t)); err != nil {
		t.Fatalf("Append() = %v, want nil", err)
	}
	if err := s.Append(ctxFor(t), []*demur.Record{}...); err != nil {
		t.Fatalf("Append(empty slice) = %v, want nil", err)
	}
	if recs := mustRecords(t, s, demur.Query{}); len(recs) != 0 {
		t.Fatalf("%d records after empty appends", len(recs))
	}
}

func testRejects(t *testing.T, open Opener) {
	s := open(t)
	good := rec("v", demur.RecTurn, `1`)
	if err := s.Append(ctxFor(t), good, &demur.Record{Kind: demur.RecTurn}); err == nil {
		t.Fatalf("Append of a record without a stream succeeded")
	}
	if err := s.Append(ctxFor(t), good, nil); err == nil {
		t.Fatalf("Append of a nil record succeeded")
	}
	for _, bad := range []*demur.Record{
		{Stream: "v", Actor: "nul\x00byte"},
		{Stream: "v", Job: "bad utf-8 \xff"},
		{Stream: "v\x00"},
	} {
		if err := s.Append(ctxFor(t), good, bad); err == nil {
			t.Fatalf("Append of %+v succeeded", brief(bad))
		}
	}
	far := rec("v", demur.RecTurn, `1`)
	far.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) // RFC 3339 cannot hold it
	if err := s.Append(ctxFor(t), good, far); err == nil {
		t.Fatalf("Append of a record in year 10000 succeeded")
	}
	// The call is all or nothing: the good record went nowhere either.
	if recs := mustRecords(t, s, demur.Query{}); len(recs) != 0 {
		t.Fatalf("rejected Append wrote %d records", len(recs))
	}
}

// testRandomInterleavings: whatever mix of streams, call sizes and
// concurrency, every stream verifies, holds exactly the records appended to
// it, and keeps each appender's own order.
func testRandomInterleavings(t *testing.T, open Opener) {
	s := open(t)
	ctx := ctxFor(t)
	iter := 0
	rapid.Check(t, func(rt *rapid.T) {
		iter++
		prefix := fmt.Sprintf("p%d-", iter) // one store for all runs: streams kept apart
		nStreams := rapid.IntRange(1, 4).Draw(rt, "streams")
		workers := rapid.IntRange(1, 4).Draw(rt, "workers")
		type call struct{ streams []int }
		plan := make([][]call, workers)
		for w := range plan {
			n := rapid.IntRange(0, 6).Draw(rt, fmt.Sprintf("calls%d", w))
			for range n {
				c := call{streams: rapid.SliceOfN(rapid.IntRange(0, nStreams-1), 1, 3).Draw(rt, "call")}
				plan[w] = append(plan[w], c)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w, calls := range plan {
			wg.Go(func() {
				for ci, c := range calls {
					var recs []*demur.Record
					for k, st := range c.streams {
						recs = append(recs, rec(fmt.Sprint(prefix, st), demur.RecTurn, fmt.Sprintf("%d.%d.%d", w, ci, k)))
					}
					if err := s.Append(ctx, recs...); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			rt.Fatalf("Append: %v", err)
		}
		want := map[string][]string{} // stream -> payloads per worker order
		for w, calls := range plan {
			for ci, c := range calls {
				for k, st := range c.streams {
					name := fmt.Sprint(prefix, st)
					want[name] = append(want[name], fmt.Sprintf("%d.%d.%d", w, ci, k))
				}
			}
		}
		for st, payloads := range want {
			recs, err := s.Records(ctx, demur.Query{Stream: st})
			if err != nil {
				rt.Fatalf("Records: %v", err)
			}
			if err := VerifyStream(recs); err != nil {
				rt.Fatalf("stream %s: %v", st, err)
			}
			var got []string
			lastPos := map[string]string{}
			for _, r := range recs {
				p := string(r.Payload)
				got = append(got, p)
				w := p[:strings.IndexByte(p, '.')]
				if prev, ok := lastPos[w]; ok && !before(prev, p) {
					rt.Fatalf("stream %s: worker %s wrote %s after %s", st, w, p, prev)
				}
				lastPos[w] = p
			}
			sort.Strings(got)
			sort.Strings(payloads)
			if strings.Join(got, ",") != strings.Join(payloads, ",") {
				rt.Fatalf("stream %s holds %v, want %v", st, got, payloads)
			}
		}
	})
}

// before orders "w.call.k" payloads of one worker numerically.
func before(a, b string) bool {
	var w, c1, k1, c2, k2 int
	fmt.Sscanf(a, "%d.%d.%d", &w, &c1, &k1)
	fmt.Sscanf(b, "%d.%d.%d", &w, &c2, &k2)
	return c1 < c2 || (c1 == c2 && k1 < k2)
}
