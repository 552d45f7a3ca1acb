package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/postgres"
	"github.com/demurhq/demur/storetest"
	"github.com/jackc/pgx/v5"
)

const envURL = "DEMUR_TEST_POSTGRES_URL"

// schemaURL creates a schema of its own for t, dropped when t ends, and
// returns the test server's URL with search_path pointing at it.
func schemaURL(t testing.TB) string {
	base := os.Getenv(envURL)
	if base == "" {
		t.Skipf("set %s to run the PostgreSQL tests, e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable", envURL, envURL)
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", envURL, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "demur_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close(ctx)
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", envURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema) // lets a test find its own sessions in pg_stat_activity
	u.RawQuery = q.Encode()
	return u.String()
}

func open(t testing.TB, u string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), u)
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

func TestConformance(t *testing.T) {
	if os.Getenv(envURL) == "" {
		t.Skipf("set %s to run the PostgreSQL tests, e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable", envURL, envURL)
	}
	u := storetest.PerTest(func(t *testing.T) string { return schemaURL(t) })
	storetest.Run(t, func(t *testing.T) demur.Store { return open(t, u(t)) })
}

// TestProcessesShareChains stands in for several processes: separate
// Stores, each with its own connections, append to the same streams.
func TestProcessesShareChains(t *testing.T) {
	u := schemaURL(t)
	const stores, perStore = 3, 120
	streams := []string{"shared-a", "shared-b"}
	var ss []*postgres.Store
	for range stores {
		ss = append(ss, open(t, u))
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, stores*4)
	for si, s := range ss {
		for g := range 4 { // a few callers per store, so group commit batches mix streams
			wg.Go(func() {
				for i := range perStore / 4 {
					r := &demur.Record{Stream: streams[(si+g+i)%2], Kind: demur.RecTurn, Payload: fmt.Appendf(nil, `{"s":%d,"g":%d,"i":%d}`, si, g, i)}
					if err := s.Append(ctx, r); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for _, st := range streams {
		recs, err := ss[0].Records(ctx, demur.Query{Stream: st})
		if err != nil {
			t.Fatal(err)
		}
		if err := storetest.VerifyStream(recs); err != nil {
			t.Fatalf("stream %s: %v", st, err)
		}
		total += len(recs)
	}
	if total != stores*perStore {
		t.Fatalf("%d records, want %d", total, stores*perStore)
	}
	got, err := ss[1].Streams(ctx)
	if err != nil || len(got) != 2 || got[0] != "shared-a" || got[1] != "shared-b" {
		t.Fatalf("Streams() = %v, %v", got, err)
	}
}

// rogue opens a transaction on its own connection, for playing a writer
// that does not take the stream locks. It returns the transaction and its
// id.
func rogue(t *testing.T, u string) (pgx.Tx, string) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var xid string
	if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		t.Fatal(err)
	}
	return tx, xid
}

func insertRow(t *testing.T, tx pgx.Tx, stream string, seq int) {
	t.Helper()
	if _, err := tx.Exec(context.Background(), `INSERT INTO demur_records
		(stream, seq, time, job, kind, actor, prev_hash, hash) VALUES ($1, $2, now(), '', '', '', '', 'rogue')`,
		stream, seq); err != nil {
		t.Fatal(err)
	}
}

// waitForWaiter polls pg_locks until some session waits for the lock
// described by cond (a condition on pg_locks columns).
func waitForWaiter(t *testing.T, u, cond string, args ...any) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for range 1000 {
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE NOT granted AND "+cond, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no session ever waited for a lock where %s", cond)
}

const waitsForXid = "locktype = 'transactionid' AND transactionid::text = $1"

// TestRogueRowChainedOnto: a row slipped in without the stream lock makes
// the store's insert collide; the retry rereads the head and chains onto it.
func TestRogueRowChainedOnto(t *testing.T) {
	u := schemaURL(t)
	s := open(t, u)
	ctx := context.Background()
	if err := s.Append(ctx, &demur.Record{Stream: "x"}); err != nil {
		t.Fatal(err)
	}
	tx, xid := rogue(t, u)
	insertRow(t, tx, "x", 2)
	r := &demur.Record{Stream: "x"}
	done := make(chan error, 1)
	go func() { done <- s.Append(ctx, r) }()
	waitForWaiter(t, u, waitsForXid, xid) // the store read head x/1, and its x/2 waits on ours
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Append = %v, want the retry to succeed", err)
	}
	if r.Seq != 3 || r.PrevHash != "rogue" {
		t.Fatalf("Append after rogue row: seq %d prev %q; want 3, \"rogue\"", r.Seq, r.PrevHash)
	}
}

// TestConflictIsolated: a record that collides twice fails alone with
// ErrConflict; the batch-mates it was queued with commit.
func TestConflictIsolated(t *testing.T) {
	u := schemaURL(t)
	s := open(t, u)
	ctx := context.Background()
	if err := s.Append(ctx, &demur.Record{Stream: "x"}); err != nil {
		t.Fatal(err)
	}
	// Two rogue rows, x/2 and x/3, in open transactions: the first attempt
	// collides on x/2, the retry (which sees x/2 committed) on x/3.
	row2, xid2 := rogue(t, u)
	insertRow(t, row2, "x", 2)
	row3, xid3 := rogue(t, u)
	insertRow(t, row3, "x", 3)
	// Holding stream "block"'s lock stalls the writer, so that x and y
	// queue up behind it and are committed as one batch.
	lockTx, _ := rogue(t, u)
	if _, err := lockTx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('demur:' || current_schema()), hashtext('block'))`); err != nil {
		t.Fatal(err)
	}
	blockDone := make(chan error, 1)
	go func() { blockDone <- s.Append(ctx, &demur.Record{Stream: "block"}) }()
	waitForWaiter(t, u, `locktype = 'advisory' AND objsubid = 2
		AND classid::text::bigint = (hashtext('demur:' || current_schema())::bigint & 4294967295)
		AND objid::text::bigint = (hashtext('block')::bigint & 4294967295)`)
	var wg sync.WaitGroup
	var errX, errY error
	wg.Go(func() { errX = s.Append(ctx, &demur.Record{Stream: "x"}) })
	wg.Go(func() { errY = s.Append(ctx, &demur.Record{Stream: "y"}) })
	time.Sleep(200 * time.Millisecond) // x and y only need to reach the queue
	if err := lockTx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-blockDone; err != nil {
		t.Fatalf("stalled Append = %v", err)
	}
	waitForWaiter(t, u, waitsForXid, xid2)
	if err := row2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitForWaiter(t, u, waitsForXid, xid3)
	if err := row3.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !errors.Is(errX, demur.ErrConflict) {
		t.Errorf("colliding Append = %v, want ErrConflict", errX)
	}
	if errY != nil {
		t.Errorf("batch-mate Append = %v, want nil", errY)
	}
	r := &demur.Record{Stream: "x"}
	if err := s.Append(ctx, r); err != nil || r.Seq != 4 {
		t.Fatalf("Append after conflict: seq %d, %v; want 4, nil", r.Seq, err)
	}
}

// TestReconnect: after the server drops every connection of the store,
// a failed call or two at most, then appends continue the chain.
func TestReconnect(t *testing.T) {
	u := schemaURL(t)
	s := open(t, u)
	ctx := context.Background()
	if err := s.Append(ctx, &demur.Record{Stream: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Records(ctx, demur.Query{}); err != nil { // puts a reader in the pool
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, os.Getenv(envURL))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	q, _ := url.Parse(u)
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, q.Query().Get("application_name")).Scan(&n); err != nil || n < 2 {
		t.Fatalf("terminated %d backends, %v; want the writer and a reader", n, err)
	}
	var appendErr, readErr error
	for range 2 {
		if appendErr = s.Append(ctx, &demur.Record{Stream: "r"}); appendErr == nil {
			break
		}
	}
	if appendErr != nil {
		t.Fatalf("Append after the server dropped connections: %v", appendErr)
	}
	var recs []*demur.Record
	for range 2 {
		if recs, readErr = s.Records(ctx, demur.Query{Stream: "r"}); readErr == nil {
			break
		}
	}
	if readErr != nil {
		t.Fatalf("Records after the server dropped connections: %v", readErr)
	}
	if err := storetest.VerifyStream(recs); err != nil || len(recs) != 2 {
		t.Fatalf("chain after reconnect: %d records, %v", len(recs), err)
	}
}
