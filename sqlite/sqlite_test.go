package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/sqlite"
	"github.com/demurhq/demur/storetest"
)

func opener() storetest.Opener {
	path := storetest.PerTest(func(t *testing.T) string {
		return filepath.Join(t.TempDir(), "sub", "dir", "demur.db")
	})
	return func(t *testing.T) demur.Store {
		s, err := sqlite.Open(context.Background(), path(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, opener())
}

func TestSecondWriterConflict(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "demur.db")
	a, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := func() *demur.Record { return &demur.Record{Stream: "s", Kind: demur.RecTurn, Payload: []byte(`{}`)} }
	if err := a.Append(ctx, rec()); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(ctx, rec()); err != nil { // b reads the head: seq 2
		t.Fatal(err)
	}
	// a's cached head (seq 1) is now stale.
	r := rec()
	if err := a.Append(ctx, r); !errors.Is(err, demur.ErrConflict) {
		t.Fatalf("stale writer Append = %v, want ErrConflict", err)
	}
	if r.Seq != 0 {
		t.Fatalf("failed Append set seq %d", r.Seq)
	}
	// The conflict dropped a's cached head, so it continues the real chain.
	if err := a.Append(ctx, r); err != nil {
		t.Fatalf("Append after conflict: %v", err)
	}
	if r.Seq != 3 {
		t.Fatalf("seq after conflict = %d, want 3", r.Seq)
	}
	recs, err := a.Records(ctx, demur.Query{Stream: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := storetest.VerifyStream(recs); err != nil || len(recs) != 3 {
		t.Fatalf("chain: %d records, %v", len(recs), err)
	}
}

// TestConflictInBatch has one caller hit a conflict while others append
// at the same time, likely in the same batch: only that caller fails, and
// every other call is written whole.
func TestConflictInBatch(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "demur.db")
	a, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := func(stream string) *demur.Record {
		return &demur.Record{Job: "j", Stream: stream, Kind: demur.RecTurn, Payload: []byte(`{}`)}
	}
	if err := a.Append(ctx, rec("s")); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(ctx, rec("s")); err != nil { // a's head of s is now stale
		t.Fatal(err)
	}
	const callers = 32
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if i == 0 {
				errs[i] = a.Append(ctx, rec("s"), rec("u-conflicted"))
				return
			}
			st := fmt.Sprint("u", i)
			errs[i] = a.Append(ctx, rec(st), rec(st), rec(st))
		})
	}
	wg.Wait()
	if !errors.Is(errs[0], demur.ErrConflict) {
		t.Errorf("stale Append = %v, want ErrConflict", errs[0])
	}
	for i, err := range errs[1:] {
		if err != nil {
			t.Errorf("caller %d: %v", i+1, err)
		}
	}
	for _, st := range []string{"s", "u-conflicted", "u1", "u31"} {
		recs, err := a.Records(ctx, demur.Query{Stream: st})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"s": 2, "u-conflicted": 0}[st]
		if st[0] == 'u' && st != "u-conflicted" {
			want = 3
		}
		if err := storetest.VerifyStream(recs); len(recs) != want || (want > 0 && err != nil) {
			t.Errorf("stream %s: %d records (want %d), %v", st, len(recs), want, err)
		}
	}
	recs, err := a.Records(ctx, demur.Query{Job: "j"})
	if err != nil || len(recs) != 2+3*(callers-1) {
		t.Errorf("job j: %d records (want %d), %v", len(recs), 2+3*(callers-1), err)
	}
}

func TestStreamsAndPath(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "demur.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	for _, st := range []string{"zeta", "alpha", "zeta", "mid"} {
		if err := s.Append(ctx, &demur.Record{Stream: st}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alpha", "mid", "zeta"}; !equal(got, want) {
		t.Errorf("Streams() = %v, want %v", got, want)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "demur.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Append(ctx, &demur.Record{Stream: "s"}); err == nil {
		t.Fatal("Append after Close succeeded")
	}
	if _, err := s.PutBlob(ctx, []byte("x")); err == nil {
		t.Fatal("PutBlob after Close succeeded")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
