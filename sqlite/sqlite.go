// Package sqlite is the embedded audit-log store: a demur.Store in one SQLite
// file, written through modernc.org/sqlite (pure Go, no cgo).
//
// Durability: the file runs in WAL mode with synchronous=FULL, so every
// commit fsyncs the WAL before Append returns. synchronous=NORMAL would be
// faster but lets the last commits vanish on power loss, and the log's
// contract is that a decision is durable before it takes effect.
//
// Group commit: a single writer goroutine owns the write connection.
// Concurrent Append and PutBlob calls queue up while a commit is in flight
// and are then written together in one transaction, so they share a single
// fsync. The transaction inserts the batch's records many rows per statement.
// Every call still gets its own result: should any insert fail (say on a
// conflict), the batch is redone call by call, each call in a savepoint, so
// that one caller's failure does not fail the others.
//
// One writer process per file: chain heads (last seq and hash of each stream)
// are cached in memory after the first read. Another process appending to the
// same file is detected, not prevented: the insert of the next seq hits the
// unique (stream, seq) index and Append returns demur.ErrConflict; the cached
// head is then dropped, so a later Append continues from the file's real
// head. Use the postgres store when several processes share one log.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/groupcommit"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Batch bounds keep one transaction, and so the wait of the callers queued
// behind it, short.
const (
	maxBatchOps   = 1024
	maxBatchBytes = 32 << 20
	queueLen      = 4096
	busyTimeoutMS = 10000
	readConns     = 4
)

// migrations are applied in order; PRAGMA user_version counts those applied.
// Append new entries, never edit old ones.
var migrations = []string{
	`CREATE TABLE records (
		id        INTEGER PRIMARY KEY,
		stream    TEXT    NOT NULL,
		seq       INTEGER NOT NULL,
		time      TEXT    NOT NULL, -- RFC 3339 nano, UTC: exactly the hashed text
		job       TEXT    NOT NULL,
		kind      TEXT    NOT NULL,
		actor     TEXT    NOT NULL,
		payload   BLOB,             -- the caller's bytes, never re-encoded
		prev_hash TEXT    NOT NULL,
		hash      TEXT    NOT NULL
	);
	CREATE UNIQUE INDEX records_stream_seq ON records (stream, seq);
	CREATE INDEX records_job ON records (job, stream, seq);
	-- A rowid table: WITHOUT ROWID would keep kilobyte bodies inside the
	-- hash index and make every lookup wade through overflow pages.
	CREATE TABLE blobs (
		hash TEXT PRIMARY KEY,
		data BLOB NOT NULL
	);`,
	// The index on records (job, stream, seq) cost each commit a page
	// write for every stream it extended, a third of all writes when many
	// jobs run. Nearly every stream holds one job, so a table of the
	// (job, stream) pairs, written once per pair, lets a query by job find
	// its streams and read them through records_stream_seq instead.
	`CREATE TABLE stream_jobs (
		job    TEXT NOT NULL,
		stream TEXT NOT NULL,
		PRIMARY KEY (job, stream)
	) WITHOUT ROWID;
	INSERT INTO stream_jobs (job, stream) SELECT DISTINCT job, stream FROM records;
	DROP INDEX records_job;`,
}

// Store is a demur.Store backed by one SQLite file. It is safe for concurrent
// use within one process; see the package doc for several processes.
type Store struct {
	path string
	wdb  *sql.DB // one connection, used only by the writer goroutine
	rdb  *sql.DB // read-only connections for queries

	w *groupcommit.Writer // the queue of writes and its one writer goroutine

	// Prepared once on the writer's connection; transactions borrow them.
	insFast [len(insSizes)]*sql.Stmt // insFast[i] inserts insSizes[i] records, for commitFast
	insOne  *sql.Stmt                // inserts one record, for commitEach
	insBlob *sql.Stmt
	insPair *sql.Stmt

	// Owned by the writer goroutine.
	heads    map[string]head
	pairs    map[jobStream]bool // pairs known to be in stream_jobs
	syncMode string             // the synchronous pragma last set on the writer connection
	rows     []*demur.Record    // the batch's records, reused between batches
	args     []any              // bind arguments, reused between statements
}

var (
	_ demur.Store        = (*Store)(nil)
	_ demur.BlobAppender = (*Store)(nil)
)

type head struct {
	seq  int64
	hash string
}

// jobStream is a row of stream_jobs: stream holds records of job.
type jobStream struct{ job, stream string }

// Open opens or creates the store at path, creating the parent directory and
// bringing the schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: empty path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
	}
	wdb, err := openDB(path, false)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxIdleTime(0)
	wdb.SetConnMaxLifetime(0)
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	rdb, err := openDB(path, true)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(readConns)
	rdb.SetMaxIdleConns(readConns)
	s := &Store{
		path:     path,
		wdb:      wdb,
		rdb:      rdb,
		heads:    make(map[string]head),
		pairs:    make(map[jobStream]bool),
		syncMode: "FULL", // as the DSN sets it
	}
	if err := s.prepare(ctx); err != nil {
		s.closeStmts()
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("open sqlite store %s: prepare: %w", path, err)
	}
	s.w = groupcommit.Start(groupcommit.Limits{Queue: queueLen, Ops: maxBatchOps, Bytes: maxBatchBytes}, s.commit)
	return s, nil
}

// insSizes are the row counts of the prepared multi-row inserts, largest
// first. A batch is written with as few statements as these sizes allow:
// each statement costs a trip through database/sql and the VDBE, which
// used to dominate the writer's time when every record had its own.
var insSizes = [...]int{128, 32, 8, 1}

// insertSQL returns an INSERT of n records, with conflict clause onConflict.
//
// commitFast's inserts say OR ROLLBACK: any failure ends the transaction,
// which commitFast then redoes call by call anyway. That spares SQLite the
// statement journal a multi-row INSERT otherwise keeps to undo itself
// alone, a copy of every page it touches. commitEach needs the default
// (ABORT), which leaves the rest of the transaction standing.
func insertSQL(onConflict string, n int) string {
	var b strings.Builder
	b.WriteString("INSERT " + onConflict + " INTO records (stream, seq, time, job, kind, actor, payload, prev_hash, hash) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// prepare prepares the writer's statements on its connection.
func (s *Store) prepare(ctx context.Context) error {
	var err error
	for i, n := range insSizes {
		if s.insFast[i], err = s.wdb.PrepareContext(ctx, insertSQL("OR ROLLBACK", n)); err != nil {
			return err
		}
	}
	if s.insOne, err = s.wdb.PrepareContext(ctx, insertSQL("", 1)); err != nil {
		return err
	}
	if s.insBlob, err = s.wdb.PrepareContext(ctx,
		"INSERT INTO blobs (hash, data) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING"); err != nil {
		return err
	}
	s.insPair, err = s.wdb.PrepareContext(ctx,
		"INSERT INTO stream_jobs (job, stream) VALUES (?, ?) ON CONFLICT DO NOTHING")
	return err
}

// closeStmts closes the statements prepare made.
func (s *Store) closeStmts() error {
	var errs []error
	for _, st := range append(s.insFast[:], s.insOne, s.insBlob, s.insPair) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// writerPragmas tune the writer's connection for throughput. None of them
// touches durability: every record commit still fsyncs the WAL.
const writerPragmas = "" +
	// Statement journals (a savepoint, or a statement that must be able to
	// undo itself) live in memory, not in a temp file written page by page.
	// Only rollbacks inside a live transaction read them, never recovery.
	"&_pragma=temp_store(MEMORY)" +
	// 64 MiB of page cache (the default is 2 MiB) holds the index pages
	// where hundreds of streams grow, instead of rereading them.
	"&_pragma=cache_size(-65536)" +
	// Checkpoint every ~40 MiB of WAL rather than 4 MiB: index pages that
	// many commits rewrote are copied to the main file once, and the
	// checkpoint's fsyncs come ten times less often.
	"&_pragma=wal_autocheckpoint(10000)"

// openDB opens path with the pragmas every connection needs. Pragmas go in
// the DSN because database/sql may open new connections at any time.
func openDB(path string, readOnly bool) (*sql.DB, error) {
	// A file: URI so that '?' or '#' in the path cannot be taken for
	// parameters; those are percent-escaped.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
	dsn := "file:" + esc +
		"?_pragma=busy_timeout(" + fmt.Sprint(busyTimeoutMS) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(ON)" +
		"&_txlock=immediate" // take the write lock at BEGIN: no deadlocked lock upgrades
	if readOnly {
		dsn += "&_pragma=query_only(1)"
	} else {
		dsn += writerPragmas
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	return db, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate: schema version %d is newer than this build supports (%d)", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate: to version %d: %w", i+1, err)
		}
	}
	// PRAGMA takes no bind parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migrate: set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// Path returns the database file path given to Open.
func (s *Store) Path() string { return s.path }

// Append assigns each record its stream's next Seq, Time when zero, PrevHash
// and Hash, and returns once all of them are durable. The records of one call
// are written atomically and in order. On error the records are left as
// they were. A context canceled before the records reach the writer aborts
// the call; once they are being written, Append waits for the commit.
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
// data is committed. It is durable no later than the commit of the next
// Append, so a record appended after PutBlob returns never refers to a
// blob lost in a crash. Concurrent puts share commits with appends.
func (s *Store) PutBlob(ctx context.Context, data []byte) (string, error) {
	b := demur.HashBlobs([][]byte{data})
	if err := s.w.Write(ctx, b, nil); err != nil {
		return "", fmt.Errorf("put blob: %w", err)
	}
	return b[0].Hash, nil
}

// Blob returns the data stored under hash, or an error wrapping
// demur.ErrNotFound.
func (s *Store) Blob(ctx context.Context, hash string) ([]byte, error) {
	var data []byte
	err := s.rdb.QueryRowContext(ctx, "SELECT data FROM blobs WHERE hash = ?", hash).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
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
	if q.Job != "" {
		where = append(where, "job = ?")
		args = append(args, q.Job)
		if q.Stream == "" {
			// Without an index on job, find the job's streams first.
			where = append(where, "stream IN (SELECT stream FROM stream_jobs WHERE job = ?)")
			args = append(args, q.Job)
		}
	}
	if q.Stream != "" {
		where = append(where, "stream = ?")
		args = append(args, q.Stream)
	}
	if len(q.Kinds) > 0 {
		marks := make([]string, len(q.Kinds))
		for i, k := range q.Kinds {
			marks[i] = "?"
			args = append(args, string(k))
		}
		where = append(where, "kind IN ("+strings.Join(marks, ",")+")")
	}
	if q.AfterSeq > 0 {
		where = append(where, "seq > ?")
		args = append(args, q.AfterSeq)
	}
	query := "SELECT stream, seq, time, job, kind, actor, payload, prev_hash, hash FROM records"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY stream, seq"
	if q.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, q.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	defer rows.Close()
	var out []*demur.Record
	for rows.Next() {
		var (
			r    demur.Record
			ts   string
			kind string
		)
		if err := rows.Scan(&r.Stream, &r.Seq, &ts, &r.Job, &kind, &r.Actor, &r.Payload, &r.PrevHash, &r.Hash); err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
		r.Kind = demur.RecordKind(kind)
		if r.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return nil, fmt.Errorf("records: %s/%d: bad time %q: %w", r.Stream, r.Seq, ts, err)
		}
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	return out, nil
}

// Streams returns the names of all streams in the log, sorted.
func (s *Store) Streams(ctx context.Context) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT DISTINCT stream FROM records ORDER BY stream")
	if err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			return nil, fmt.Errorf("streams: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	return out, nil
}

// Close waits for queued writes to commit, then closes the file. Calls
// after Close fail.
func (s *Store) Close() error {
	if !s.w.Close() {
		return nil
	}
	// A checkpoint folds the WAL back into the main file so that the
	// database is one self-contained file when not in use.
	_, _ = s.wdb.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	err := errors.Join(s.closeStmts(), s.rdb.Close(), s.wdb.Close())
	if err != nil {
		return fmt.Errorf("close sqlite store: %w", err)
	}
	return nil
}

// commit writes one batch in one transaction and returns each op's result.
func (s *Store) commit(batch []*groupcommit.Op) []error {
	results := make([]error, len(batch))
	live := 0
	for i, o := range batch {
		// Skipping callers that gave up keeps "error means not written".
		if err := o.Ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		live++
	}
	if live == 0 {
		return results
	}
	// The transaction deliberately ignores callers' contexts: it carries
	// other callers' writes too.
	ctx := context.Background()
	if err := s.setSync(ctx, batch, results); err != nil {
		fillErr(results, err)
		return results
	}
	if !s.commitFast(ctx, batch, results) {
		// Some call failed, say on a conflict: redo the batch call by
		// call so that only the failing calls fail.
		s.commitEach(ctx, batch, results)
	}
	clear(s.rows[:cap(s.rows)]) // drop references to payloads
	clear(s.args[:cap(s.args)])
	return results
}

// setSync picks the synchronous mode for the batch. A batch of blobs alone
// commits without fsync: the next Append's fsync makes it durable along
// with everything before it in the WAL, and WAL recovery keeps a prefix of
// commits, so no durable record can refer to a lost blob. This halves the
// fsyncs of the usual "put the output, then append the turn" sequence.
func (s *Store) setSync(ctx context.Context, batch []*groupcommit.Op, results []error) error {
	mode := "NORMAL"
	for i, o := range batch {
		if o.Recs != nil && results[i] == nil {
			mode = "FULL"
			break
		}
	}
	// Should database/sql replace the connection, the new one starts in
	// FULL, so a stale syncMode can only cost speed, never durability.
	if mode == s.syncMode {
		return nil
	}
	if _, err := s.wdb.ExecContext(ctx, "PRAGMA synchronous = "+mode); err != nil {
		return fmt.Errorf("set synchronous: %w", err)
	}
	s.syncMode = mode
	return nil
}

// commitFast writes the whole batch with multi-row inserts and no
// savepoints, the cheap way when nothing fails. It reports false, having
// written nothing, when some statement failed: it cannot tell whose records
// were at fault, so the caller redoes the batch with commitEach.
func (s *Store) commitFast(ctx context.Context, batch []*groupcommit.Op, results []error) bool {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return false // commitEach reports it
	}
	w := newBatchWriter(s, tx)
	defer w.close()
	s.rows = s.rows[:0]
	for i, o := range batch {
		if results[i] != nil {
			continue
		}
		for _, b := range o.Blobs {
			if w.putBlob(ctx, b) != nil {
				return false
			}
		}
		for j := range o.Recs {
			r := &o.Recs[j]
			h, err := w.head(ctx, r.Stream)
			if err != nil {
				return false
			}
			w.pending[r.Stream] = w.seal(r, h)
			if w.notePair(ctx, r, w.pairs) != nil {
				return false
			}
			s.rows = append(s.rows, r)
		}
	}
	if w.insertAll(ctx, s.rows) != nil {
		return false
	}
	s.finish(w, results)
	return true
}

// commitEach writes the batch one call at a time, each call in a
// savepoint, so that one call's failure rolls back only its own writes.
func (s *Store) commitEach(ctx context.Context, batch []*groupcommit.Op, results []error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		fillErr(results, fmt.Errorf("begin: %w", err))
		return
	}
	w := newBatchWriter(s, tx)
	defer w.close()
	for i, o := range batch {
		if results[i] != nil {
			continue
		}
		for _, b := range o.Blobs {
			if results[i] = w.putBlob(ctx, b); results[i] != nil {
				break
			}
		}
		if results[i] == nil && o.Recs != nil {
			results[i] = w.append(ctx, o.Recs)
		}
	}
	s.finish(w, results)
}

// finish commits w's transaction and, once it is durable, publishes the
// heads it moved.
func (s *Store) finish(w *batchWriter, results []error) {
	if err := w.tx.Commit(); err != nil {
		// The outcome of a failed commit is unknown; forget all heads so
		// the next batch rereads them from the file.
		clear(s.heads)
		fillErr(results, fmt.Errorf("commit: %w", err))
		return
	}
	maps.Copy(s.heads, w.pending)
	maps.Copy(s.pairs, w.pairs)
}

func fillErr(results []error, err error) {
	for i := range results {
		if results[i] == nil {
			results[i] = err
		}
	}
}

// batchWriter holds the state of one transaction. pending and pairs hold
// the heads it moved and the stream_jobs pairs it wrote; they reach
// Store.heads and Store.pairs only on commit.
type batchWriter struct {
	s  *Store
	tx *sql.Tx
	// The Store's statements, bound to tx on first use.
	fast    [len(insSizes)]*sql.Stmt
	one     *sql.Stmt
	blob    *sql.Stmt
	pair    *sql.Stmt
	pending map[string]head
	pairs   map[jobStream]bool // pairs this transaction wrote to stream_jobs
	now     time.Time          // the time given to records without one
}

func newBatchWriter(s *Store, tx *sql.Tx) *batchWriter {
	return &batchWriter{s: s, tx: tx, pending: make(map[string]head), pairs: make(map[jobStream]bool)}
}

func (w *batchWriter) close() {
	for _, st := range append(w.fast[:], w.one, w.blob, w.pair) {
		if st != nil {
			st.Close()
		}
	}
	w.tx.Rollback() // no-op after Commit
}

func (w *batchWriter) head(ctx context.Context, stream string) (head, error) {
	if h, ok := w.pending[stream]; ok {
		return h, nil
	}
	if h, ok := w.s.heads[stream]; ok {
		return h, nil
	}
	var h head
	err := w.tx.QueryRowContext(ctx,
		"SELECT seq, hash FROM records WHERE stream = ? ORDER BY seq DESC LIMIT 1", stream).Scan(&h.seq, &h.hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return head{}, fmt.Errorf("read head of %q: %w", stream, err)
	}
	return h, nil
}

// seal makes r the record after h and returns r's head. A record without
// a time gets the transaction's; when commitFast gives up, commitEach
// reseals the record and keeps that time, as a record that had it.
func (w *batchWriter) seal(r *demur.Record, h head) head {
	r.Seq = h.seq + 1
	if r.Time.IsZero() {
		if w.now.IsZero() {
			// Microseconds, so the time survives any store or JSON
			// round trip the record may take later.
			w.now = time.Now().UTC().Truncate(time.Microsecond)
		}
		r.Time = w.now
	} else {
		r.Time = r.Time.UTC() // drops zone and monotonic reading; the hash is unchanged
	}
	r.Seal(h.hash)
	return head{seq: r.Seq, hash: r.Hash}
}

// notePair writes r's (job, stream) pair to stream_jobs unless it is
// known to be there, and adds it to noted: w.pairs, or for a call in a
// savepoint the call's own set, kept only if the call succeeds.
func (w *batchWriter) notePair(ctx context.Context, r *demur.Record, noted map[jobStream]bool) error {
	p := jobStream{r.Job, r.Stream}
	if w.s.pairs[p] || w.pairs[p] || noted[p] {
		return nil
	}
	if w.pair == nil {
		w.pair = w.tx.StmtContext(ctx, w.s.insPair)
	}
	if _, err := w.pair.ExecContext(ctx, p.job, p.stream); err != nil {
		return fmt.Errorf("insert stream of job %q: %w", p.job, err)
	}
	noted[p] = true
	return nil
}

// insertAll writes sealed records in order, as many per statement as the
// prepared sizes allow, for commitFast. On error the transaction is over.
func (w *batchWriter) insertAll(ctx context.Context, rows []*demur.Record) error {
	for len(rows) > 0 {
		i := 0
		for insSizes[i] > len(rows) {
			i++ // ends at size 1
		}
		if w.fast[i] == nil {
			w.fast[i] = w.tx.StmtContext(ctx, w.s.insFast[i])
		}
		n := insSizes[i]
		if err := w.exec(ctx, w.fast[i], rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// exec runs an insert of rows, reusing the Store's argument slice.
func (w *batchWriter) exec(ctx context.Context, st *sql.Stmt, rows []*demur.Record) error {
	args := w.s.args[:0]
	for _, r := range rows {
		args = append(args, r.Stream, r.Seq, r.Time.Format(time.RFC3339Nano),
			r.Job, string(r.Kind), r.Actor, r.Payload, r.PrevHash, r.Hash)
	}
	w.s.args = args
	_, err := st.ExecContext(ctx, args...)
	return err
}

// insertErr describes r's failed insert. A unique violation means someone
// else extended r's stream: the cached head is stale.
func (w *batchWriter) insertErr(r *demur.Record, err error) error {
	if !isUnique(err) {
		return fmt.Errorf("insert %s/%d: %w", r.Stream, r.Seq, err)
	}
	delete(w.pending, r.Stream)
	delete(w.s.heads, r.Stream)
	return fmt.Errorf("stream %q seq %d already written by another writer: %w", r.Stream, r.Seq, demur.ErrConflict)
}

// append writes one call's records for commitEach. They must land
// together or not at all, along with their stream_jobs pairs, without
// failing the rest of the batch: a savepoint scopes the rollback to this
// call. This path is rare, so it takes the savepoint even for one record.
func (w *batchWriter) append(ctx context.Context, recs []demur.Record) (err error) {
	if w.one == nil {
		w.one = w.tx.StmtContext(ctx, w.s.insOne)
	}
	if _, err := w.tx.ExecContext(ctx, "SAVEPOINT rec"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	moved := make(map[string]head, 1)
	pairs := make(map[jobStream]bool, 1)
	for i := range recs {
		r := &recs[i]
		h, ok := moved[r.Stream]
		if !ok {
			if h, err = w.head(ctx, r.Stream); err != nil {
				break
			}
		}
		moved[r.Stream] = w.seal(r, h)
		if err = w.notePair(ctx, r, pairs); err != nil {
			break
		}
		if err = w.exec(ctx, w.one, []*demur.Record{r}); err != nil {
			err = w.insertErr(r, err)
			break
		}
	}
	if err != nil {
		if _, rbErr := w.tx.ExecContext(ctx, "ROLLBACK TO rec"); rbErr != nil {
			return errors.Join(err, fmt.Errorf("rollback to savepoint: %w", rbErr))
		}
	}
	if _, relErr := w.tx.ExecContext(ctx, "RELEASE rec"); relErr != nil && err == nil {
		err = fmt.Errorf("release savepoint: %w", relErr)
	}
	if err != nil {
		return err
	}
	maps.Copy(w.pending, moved)
	maps.Copy(w.pairs, pairs)
	return nil
}

func (w *batchWriter) putBlob(ctx context.Context, b demur.Blob) error {
	if w.blob == nil {
		w.blob = w.tx.StmtContext(ctx, w.s.insBlob)
	}
	if _, err := w.blob.ExecContext(ctx, b.Hash, b.Data); err != nil {
		return fmt.Errorf("insert blob %s: %w", b.Hash, err)
	}
	return nil
}

func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}
