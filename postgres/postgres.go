// Package postgres is the shared audit-log store: a demur.Store in
// PostgreSQL that many processes can append to at once.
//
// Tables (demur_records, demur_blobs, demur_schema_version) live in the
// first schema of the connection's search_path, so one database can hold
// several logs: add search_path=NAME to the URL.
//
// Chains stay whole across processes because appends to a stream are
// serialised with a transaction-level advisory lock on (schema, stream):
// the writer takes the locks of every stream in a batch, in a fixed order,
// then reads those streams' heads, so it always extends the latest
// committed record. A unique (stream, seq) index backs this up: should a
// writer that bypasses the locks slip a row in, the batch is retried once
// with fresh heads, and if it collides again Append returns
// demur.ErrConflict. Either way no chain forks.
//
// Group commit: like the sqlite store, one writer goroutine per Store batches
// concurrent Append and PutBlob calls into one transaction, and one WAL
// flush. A call's own failure is isolated with a savepoint and does not
// fail the others.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/groupcommit"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	maxBatchOps   = 512
	maxBatchBytes = 32 << 20
	queueLen      = 4096
	readConns     = 4
)

// migrationLock serialises schema creation across processes. It is a
// one-argument advisory key, a key space apart from the two-argument
// stream locks.
const migrationLock = 0x64656d7572 // "demur"

// migrations are applied in order; demur_schema_version records how many.
// Append new entries, never edit old ones.
var migrations = []string{
	`CREATE TABLE IF NOT EXISTS demur_records (
		id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		stream    text COLLATE "C" NOT NULL, -- byte order, as the sqlite store sorts
		seq       bigint      NOT NULL,
		time      timestamptz NOT NULL,
		time_ns   integer     NOT NULL DEFAULT 0, -- nanoseconds below timestamptz's microsecond
		job       text        NOT NULL,
		kind      text        NOT NULL,
		actor     text        NOT NULL,
		payload   bytea,                          -- the caller's bytes, never re-encoded
		prev_hash text        NOT NULL,
		hash      text        NOT NULL,
		UNIQUE (stream, seq)
	);
	CREATE INDEX IF NOT EXISTS demur_records_job ON demur_records (job, stream, seq);
	CREATE TABLE IF NOT EXISTS demur_blobs (
		hash text  PRIMARY KEY,
		data bytea NOT NULL
	);`,
}

// Store is a demur.Store on PostgreSQL, safe for concurrent use, and safe
// to run in several processes against the same tables.
type Store struct {
	cfg     *pgx.ConnConfig
	lockNS  int32 // advisory-lock class: hash of the schema name
	readers *pool

	w *groupcommit.Writer // the queue of writes and its one writer goroutine

	wconn *pgx.Conn // owned by the writer goroutine
}

var (
	_ demur.Store        = (*Store)(nil)
	_ demur.BlobAppender = (*Store)(nil)
)

// Open connects to the database at url (postgres://… or postgresql://…,
// any form pgx accepts) and creates the tables if they are missing.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if err := migrate(ctx, conn); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	s := &Store{
		cfg:     cfg,
		readers: &pool{cfg: cfg, sem: make(chan struct{}, readConns), idle: make(chan *pgx.Conn, readConns)},
		wconn:   conn,
	}
	if err := conn.QueryRow(ctx, "SELECT hashtext('demur:' || current_schema())").Scan(&s.lockNS); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("open postgres store: lock namespace: %w", err)
	}
	s.w = groupcommit.Start(groupcommit.Limits{Queue: queueLen, Ops: maxBatchOps, Bytes: maxBatchBytes}, s.commit)
	return s, nil
}

func migrate(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	var schema *string
	if err := tx.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if schema == nil {
		return errors.New("migrate: no schema in search_path exists")
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS demur_schema_version (version integer NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var v int
	err = tx.QueryRow(ctx, "SELECT version FROM demur_schema_version").Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, "INSERT INTO demur_schema_version (version) VALUES (0)"); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate: schema %s is at version %d, newer than this build supports (%d)", *schema, v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate: to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.Exec(ctx, "UPDATE demur_schema_version SET version = $1", len(migrations)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// Append assigns each record its stream's next Seq, Time when zero, PrevHash
// and Hash, and returns once all of them are committed (durable, with the
// server's default synchronous_commit). The records of one call are written
// atomically and in order. On error the records are left as they were.
// A context canceled before the records reach the writer aborts the call;
// once they are being written, Append waits for the commit. If the
// connection drops during the commit, the outcome is unknown: the error
// says so, and the records may or may not be in the log.
func (s *Store) Append(ctx context.Context, recs ...*demur.Record) error {
	return s.AppendWithBlobs(ctx, nil, recs...)
}

// AppendWithBlobs stores blobs and appends recs, as Append, in one
// transaction: one commit where PutBlob and Append would take two.
func (s *Store) AppendWithBlobs(ctx context.Context, blobs [][]byte, recs ...*demur.Record) error {
	if err := s.w.Write(ctx, demur.HashBlobs(blobs), recs); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return nil
}

// PutBlob stores data under its content hash and returns the hash once the
// data is committed. A batch of blobs alone commits asynchronously: the
// next Append's synchronous commit flushes the WAL past it, so a record
// appended after PutBlob returns never refers to a blob lost in a crash.
func (s *Store) PutBlob(ctx context.Context, data []byte) (string, error) {
	b := demur.HashBlobs([][]byte{data})
	if err := s.w.Write(ctx, b, nil); err != nil {
		return "", fmt.Errorf("put blob %s: %w", b[0].Hash, err)
	}
	return b[0].Hash, nil
}

// Blob returns the data stored under hash, or an error wrapping
// demur.ErrNotFound.
func (s *Store) Blob(ctx context.Context, hash string) ([]byte, error) {
	var data []byte
	err := s.readers.with(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT data FROM demur_blobs WHERE hash = $1", hash).Scan(&data)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("blob %s: %w", hash, demur.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", hash, err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// Records returns the records matching q, ordered by stream, then seq.
func (s *Store) Records(ctx context.Context, q demur.Query) ([]*demur.Record, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Job != "" {
		where = append(where, "job = "+arg(q.Job))
	}
	if q.Stream != "" {
		where = append(where, "stream = "+arg(q.Stream))
	}
	if len(q.Kinds) > 0 {
		kinds := make([]string, len(q.Kinds))
		for i, k := range q.Kinds {
			kinds[i] = string(k)
		}
		where = append(where, "kind = ANY("+arg(kinds)+")")
	}
	if q.AfterSeq > 0 {
		where = append(where, "seq > "+arg(q.AfterSeq))
	}
	query := "SELECT stream, seq, time, time_ns, job, kind, actor, payload, prev_hash, hash FROM demur_records"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY stream, seq"
	if q.Limit > 0 {
		query += " LIMIT " + arg(q.Limit)
	}
	var out []*demur.Record
	err := s.readers.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				r    demur.Record
				ns   int32
				kind string
			)
			if err := rows.Scan(&r.Stream, &r.Seq, &r.Time, &ns, &r.Job, &kind, &r.Actor, &r.Payload, &r.PrevHash, &r.Hash); err != nil {
				return err
			}
			r.Kind = demur.RecordKind(kind)
			r.Time = r.Time.UTC().Add(time.Duration(ns))
			out = append(out, &r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	return out, nil
}

// Streams returns the names of all streams in the log, sorted.
func (s *Store) Streams(ctx context.Context) ([]string, error) {
	var out []string
	err := s.readers.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT DISTINCT stream FROM demur_records ORDER BY stream")
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	return out, nil
}

// Close waits for queued writes to commit, then closes all connections.
// Calls after Close fail.
func (s *Store) Close() error {
	if !s.w.Close() {
		return nil
	}
	var err error
	if s.wconn != nil {
		err = s.wconn.Close(context.Background())
	}
	s.readers.close()
	if err != nil {
		return fmt.Errorf("close postgres store: %w", err)
	}
	return nil
}

// errIsolate asks commit to redo a batch with a savepoint per op, because
// some op failed and must fail alone.
var errIsolate = errors.New("an op failed; isolate")

// commit writes one batch and returns each op's result.
func (s *Store) commit(batch []*groupcommit.Op) []error {
	results := make([]error, len(batch))
	var live []int
	for i, o := range batch {
		// Skipping callers that gave up keeps "error means not written".
		if err := o.Ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		live = append(live, i)
	}
	if len(live) > 0 {
		// The fast path pipelines the whole batch; only if something in it
		// fails is it redone op by op, so that only the culprit fails.
		err := s.runTx(batch, live, results, false)
		if errors.Is(err, errIsolate) {
			err = s.runTx(batch, live, results, true)
		}
		if err != nil {
			for _, i := range live {
				if results[i] == nil {
					results[i] = err
				}
			}
		}
	}
	return results
}

// runTx writes the live ops of batch in one transaction. With isolate false
// it either writes all of them or returns errIsolate (or a batch-wide
// error) having written none; with isolate true each op gets its own result
// in results. The ops' records are only assigned their final values if the
// transaction commits.
func (s *Store) runTx(batch []*groupcommit.Op, live []int, results []error, isolate bool) (err error) {
	ctx := context.Background() // the transaction carries several callers' writes
	if s.wconn == nil || s.wconn.IsClosed() {
		if s.wconn, err = pgx.ConnectConfig(ctx, s.cfg); err != nil {
			s.wconn = nil
			return fmt.Errorf("reconnect: %w", err)
		}
	}
	tx, err := s.wconn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(ctx)
		}
	}()

	var streams []string
	for _, i := range live {
		for _, r := range batch[i].Recs {
			streams = append(streams, r.Stream)
		}
	}
	slices.Sort(streams)
	streams = slices.Compact(streams)

	setup := &pgx.Batch{}
	if len(streams) == 0 {
		// Blobs alone: see PutBlob for why an asynchronous commit is safe.
		setup.Queue("SET LOCAL synchronous_commit TO OFF")
	}
	// One fixed order (sorted names) for every process: no lock cycles.
	for _, st := range streams {
		setup.Queue("SELECT pg_advisory_xact_lock($1, hashtext($2))", s.lockNS, st)
	}
	// Under READ COMMITTED this statement's snapshot is taken after the
	// locks are held, so it sees every chain's latest committed head.
	heads := make(map[string]head, len(streams))
	if len(streams) > 0 {
		setup.Queue(`SELECT s, coalesce(r.seq, 0), coalesce(r.hash, '')
			FROM unnest($1::text[]) AS s
			LEFT JOIN LATERAL (
				SELECT seq, hash FROM demur_records WHERE stream = s ORDER BY seq DESC LIMIT 1
			) AS r ON true`, streams).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					st string
					h  head
				)
				if err := rows.Scan(&st, &h.seq, &h.hash); err != nil {
					return err
				}
				heads[st] = h
			}
			return rows.Err()
		})
	}
	if setup.Len() > 0 {
		if err := tx.SendBatch(ctx, setup).Close(); err != nil {
			return fmt.Errorf("lock streams: %w", err)
		}
	}

	// Work on copies of the records so that a rolled-back attempt leaves
	// nothing behind; they replace the ops' records only after commit.
	work := make(map[int][]demur.Record, len(live))
	now := time.Now().UTC().Truncate(time.Microsecond)
	ok := make([]bool, len(batch))
	if !isolate {
		b := &pgx.Batch{}
		for _, i := range live {
			work[i] = s.queueOp(b, batch[i], heads, now)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			if isConnErr(err) {
				return fmt.Errorf("write: %w", err)
			}
			// Even a lone op is retried: the retry rereads the heads, so a
			// row slipped in by a writer that skips the lock is chained
			// onto rather than failed on.
			return errIsolate
		}
		for _, i := range live {
			ok[i] = true
		}
	} else {
		for _, i := range live {
			saved := snapshotHeads(heads, batch[i].Recs)
			b := &pgx.Batch{}
			b.Queue("SAVEPOINT op")
			recs := s.queueOp(b, batch[i], heads, now)
			b.Queue("RELEASE SAVEPOINT op")
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				if isConnErr(err) {
					return fmt.Errorf("write: %w", err)
				}
				if _, rbErr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT op"); rbErr != nil {
					return fmt.Errorf("rollback to savepoint: %w", rbErr)
				}
				if _, rbErr := tx.Exec(ctx, "RELEASE SAVEPOINT op"); rbErr != nil {
					return fmt.Errorf("release savepoint: %w", rbErr)
				}
				for st, h := range saved {
					heads[st] = h
				}
				results[i] = opErr(err)
				continue
			}
			work[i] = recs
			ok[i] = true
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit (outcome unknown if the connection dropped): %w", err)
	}
	for i, recs := range work {
		if ok[i] {
			copy(batch[i].Recs, recs)
		}
	}
	return nil
}

type head struct {
	seq  int64
	hash string
}

// snapshotHeads copies the heads of the streams recs touch.
func snapshotHeads(heads map[string]head, recs []demur.Record) map[string]head {
	m := make(map[string]head, len(recs))
	for _, r := range recs {
		m[r.Stream] = heads[r.Stream]
	}
	return m
}

// queueOp queues the statements of one op on b, advancing heads, and
// returns the op's records as they will be once committed.
func (s *Store) queueOp(b *pgx.Batch, o *groupcommit.Op, heads map[string]head, now time.Time) []demur.Record {
	for _, bl := range o.Blobs {
		b.Queue("INSERT INTO demur_blobs (hash, data) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING", bl.Hash, bl.Data)
	}
	if len(o.Recs) == 0 {
		return nil
	}
	recs := slices.Clone(o.Recs)
	for k := range recs {
		r := &recs[k]
		h := heads[r.Stream]
		r.Seq = h.seq + 1
		if r.Time.IsZero() {
			// Microseconds: what timestamptz keeps, and what survives a
			// JSON round trip elsewhere.
			r.Time = now
		} else {
			r.Time = r.Time.UTC() // drops zone and monotonic reading; the hash is unchanged
		}
		r.Seal(h.hash)
		heads[r.Stream] = head{seq: r.Seq, hash: r.Hash}
		micro := r.Time.Truncate(time.Microsecond)
		b.Queue(`INSERT INTO demur_records
			(stream, seq, time, time_ns, job, kind, actor, payload, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			r.Stream, r.Seq, micro, int32(r.Time.Sub(micro)), r.Job, string(r.Kind), r.Actor, r.Payload, r.PrevHash, r.Hash)
	}
	return recs
}

// opErr maps a statement's error to what the caller should see.
func opErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return fmt.Errorf("a writer that does not take the stream lock appended first: %w (%v)", demur.ErrConflict, err)
	}
	return err
}

// isConnErr reports whether err is not a statement's failure but the
// connection's, which no savepoint can contain.
func isConnErr(err error) bool {
	var pe *pgconn.PgError
	return !errors.As(err, &pe)
}

// pool is a minimal connection pool for readers; pgxpool would need a
// further module.
type pool struct {
	cfg  *pgx.ConnConfig
	sem  chan struct{} // bounds open connections
	idle chan *pgx.Conn

	mu     sync.Mutex
	closed bool
}

func (p *pool) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.sem }()
	if err := ctx.Err(); err != nil {
		return err
	}
	var c *pgx.Conn
	select {
	case c = <-p.idle:
	default:
		var err error
		if c, err = pgx.ConnectConfig(ctx, p.cfg); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	}
	err := fn(c)
	p.mu.Lock()
	defer p.mu.Unlock()
	// A canceled query can leave the connection closed or mid-protocol.
	if p.closed || c.IsClosed() || c.PgConn().IsBusy() || ctx.Err() != nil {
		c.Close(context.Background())
		return err
	}
	select {
	case p.idle <- c:
	default:
		c.Close(context.Background())
	}
	return err
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for {
		select {
		case c := <-p.idle:
			c.Close(context.Background())
		default:
			return
		}
	}
}
