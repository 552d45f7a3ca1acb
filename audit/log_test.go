package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	_ "modernc.org/sqlite" // the database/sql driver, for tampering with the file

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/audit"
	"github.com/demurhq/demur/sqlite"
)

func mustRecords(t testing.TB, st demur.Store, q demur.Query) []*demur.Record {
	t.Helper()
	recs, err := st.Records(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func blobFunc(st demur.Store) func(string) ([]byte, error) {
	return func(h string) ([]byte, error) { return st.Blob(context.Background(), h) }
}

// checkWindows asserts the checkpoint layout: one after at most every
// records, windows contiguous, each right after the record it attests.
func checkWindows(t *testing.T, recs []*demur.Record, every int) int {
	t.Helper()
	from, n := map[string]int64{}, 0
	for _, r := range recs {
		if from[r.Stream] == 0 {
			from[r.Stream] = 1
		}
		f := from[r.Stream]
		if r.Kind != demur.RecCheckpoint {
			if r.Seq-f+1 > int64(every) {
				t.Fatalf("%s/%d: %d records since the last checkpoint, want <= %d", r.Stream, r.Seq, r.Seq-f+1, every)
			}
			continue
		}
		c, err := audit.ParseCheckpoint(r.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if c.From != f || c.Seq != r.Seq-1 || c.Head != r.PrevHash {
			t.Fatalf("%s/%d: checkpoint %d..%d head %s, want %d..%d head %s", r.Stream, r.Seq, c.From, c.Seq, c.Head, f, r.Seq-1, r.PrevHash)
		}
		from[r.Stream] = c.Seq + 1
		n++
	}
	return n
}

func TestLogCheckpointsEvery(t *testing.T) {
	st := newMemStore()
	key := testKey(1)
	log := audit.NewLog(st, key, 10)
	rng := rand.New(rand.NewPCG(1, 2))
	writeJob(t, log, "job-a", 203, rng)
	writeJob(t, log, "job-b", 57, rng)
	recs := mustRecords(t, st, demur.Query{})
	if n := checkWindows(t, recs, 10); n < 25 {
		t.Fatalf("%d checkpoints in %d records, want >= 25", n, len(recs))
	}
	res := audit.Verify(recs, audit.Options{PublicKey: key.Public().(ed25519PublicKey), Blob: blobFunc(st)})
	if !res.OK || res.Streams != 2 || res.Signatures != res.Checkpoints || res.Checkpoints < 25 || res.Blobs == 0 {
		t.Fatalf("verify: %+v", res)
	}
	if res.Unattested >= 10*2 {
		t.Errorf("%d records unattested, want < 20", res.Unattested)
	}
}

func TestLogCheckpointForce(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	log := audit.NewLog(st, testKey(1), 100)
	if err := log.Checkpoint(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	writeJob(t, log, "j", 7, rand.New(rand.NewPCG(1, 1)))
	for range 2 { // the second call finds the stream already checkpointed
		if err := log.Checkpoint(ctx, "j"); err != nil {
			t.Fatal(err)
		}
	}
	recs := mustRecords(t, st, demur.Query{})
	if len(recs) != 8 || recs[7].Kind != demur.RecCheckpoint || recs[7].Job != "j" {
		t.Fatalf("got %d records, last %s; want 7 and one checkpoint", len(recs), recs[len(recs)-1].Kind)
	}
	res := audit.Verify(recs, audit.Options{PublicKey: testKey(1).Public().(ed25519PublicKey)})
	if !res.OK || res.Checkpoints != 1 || res.Unattested != 1 {
		t.Fatalf("verify: %+v", res) // the checkpoint record itself is unattested
	}
}

// TestLogResume has a second Log (a restarted process) continue streams a
// first one left mid-window, as a job resumed after SIGKILL does.
func TestLogResume(t *testing.T) {
	st := newMemStore()
	rng := rand.New(rand.NewPCG(3, 4))
	writeJob(t, audit.NewLog(st, testKey(1), 16), "j", 45, rng)
	writeJob(t, audit.NewLog(st, testKey(1), 16), "j", 40, rng)
	writeJob(t, st, "legacy", 30, rng) // written before there was a Log
	writeJob(t, audit.NewLog(st, testKey(1), 16), "legacy", 10, rng)
	for _, stream := range []string{"j", "legacy"} {
		recs := mustRecords(t, st, demur.Query{Stream: stream})
		checkWindows(t, recs, 16+30)
	}
	res := audit.Verify(mustRecords(t, st, demur.Query{}), audit.Options{PublicKey: testKey(1).Public().(ed25519PublicKey)})
	if !res.OK || res.Checkpoints < 6 {
		t.Fatalf("verify: %+v", res)
	}
}

// TestLogBypass appends around the Log: a wrong prediction without a
// checkpoint is silently corrected; one under a checkpoint is an error, and
// Verify flags that checkpoint.
func TestLogBypass(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	log := audit.NewLog(st, testKey(1), 4)
	rec := func() *demur.Record {
		return &demur.Record{Job: "j", Stream: "j", Kind: demur.RecAssign, Payload: []byte(`{}`)}
	}
	if err := log.Append(ctx, rec(), rec()); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, rec()); err != nil { // behind the Log's back
		t.Fatal(err)
	}
	if err := log.Append(ctx, rec()); err != nil {
		t.Fatalf("bypass under no checkpoint: %v", err)
	}
	if err := log.Checkpoint(ctx, "j"); err != nil { // reread; the window is now the checkpoint alone
		t.Fatal(err)
	}
	if err := log.Append(ctx, rec(), rec()); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, rec()); err != nil { // behind the Log's back again
		t.Fatal(err)
	}
	// The Log's window reaches 4 records: this append signs a stale head.
	if err := log.Append(ctx, rec()); !errors.Is(err, demur.ErrConflict) {
		t.Fatalf("bypass under a checkpoint: %v, want ErrConflict", err)
	}
	recs := mustRecords(t, st, demur.Query{})
	res := audit.Verify(recs, audit.Options{PublicKey: testKey(1).Public().(ed25519PublicKey)})
	if p, last := res.First(), recs[len(recs)-1]; p == nil || p.Kind != audit.ProblemCheckpoint || p.Seq != last.Seq || last.Kind != demur.RecCheckpoint {
		t.Fatalf("verify: %+v, want a checkpoint problem at the last record", res)
	}
	// The Log reread the head: it carries on consistently.
	if err := log.Append(ctx, rec()); err != nil {
		t.Fatal(err)
	}
}

type failStore struct{ *memStore }

func (failStore) Append(context.Context, ...*demur.Record) error { return errors.New("disk full") }

func TestLogAppendErrorLeavesRecords(t *testing.T) {
	log := audit.NewLog(failStore{newMemStore()}, testKey(1), 1)
	r := &demur.Record{Job: "j", Stream: "j", Kind: demur.RecAssign, Payload: []byte(`{}`)}
	if err := log.Append(context.Background(), r); err == nil {
		t.Fatal("append to a failing store succeeded")
	}
	if r.Seq != 0 || r.Hash != "" || r.PrevHash != "" || !r.Time.IsZero() {
		t.Fatalf("record changed by a failed append: %+v", r)
	}
}

func openSQLite(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestLogSQLite runs concurrent appenders through a Log on the real store,
// reopens it, continues, and verifies the file, with and without a tail cut
// that only the witness can see.
func TestLogSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "demur.db")
	witness := filepath.Join(dir, "keys", audit.WitnessFile)
	key, err := audit.LoadOrCreateKey(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519PublicKey)
	for round := range 2 {
		st := openSQLite(t, path)
		log := audit.NewLog(st, key, 9)
		if err := log.SetWitness(witness); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				writeJob(t, log, fmt.Sprintf("job-%d", g), 40+g, rand.New(rand.NewPCG(uint64(round), uint64(g))))
			}()
		}
		wg.Wait()
		for g := range 4 {
			if err := log.Checkpoint(ctx, fmt.Sprintf("job-%d", g)); err != nil {
				t.Fatal(err)
			}
		}
		w, err := audit.LoadWitness(witness)
		if err != nil {
			t.Fatal(err)
		}
		res, err := audit.VerifyStore(ctx, st, audit.Options{PublicKey: pub, Anchors: w.Anchors()})
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK || res.Streams != 4 || res.Anchors != 4 || res.Unattested != 4 {
			t.Fatalf("round %d: %+v", round, res)
		}
		if err := log.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Cut job-2 back to 50 records with plain SQL, as someone with write
	// access to the file could.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("DELETE FROM records WHERE stream = 'job-2' AND seq > 50"); err != nil {
		t.Fatal(err)
	}
	st := openSQLite(t, path)
	w, err := audit.LoadWitness(witness)
	if err != nil {
		t.Fatal(err)
	}
	res, err := audit.VerifyStore(ctx, st, audit.Options{PublicKey: pub, Anchors: w.Anchors()})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.First(); p == nil || p.Stream != "job-2" || p.Seq != 51 || p.Kind != audit.ProblemTruncated {
		t.Fatalf("verify after a cut: %+v, want job-2/51 truncated", res)
	}
	// Without the witness, the same cut is invisible: that is the window
	// the docs describe.
	res, err = audit.VerifyStore(ctx, st, audit.Options{PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("verify without witness: %+v", res)
	}
}
