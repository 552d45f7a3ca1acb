package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/sqlite"
	"github.com/demurhq/demur/storetest"
)

// schemaV1 is the schema as the first release wrote it, with its
// index on records (job, stream, seq).
const schemaV1 = `CREATE TABLE records (
		id        INTEGER PRIMARY KEY,
		stream    TEXT    NOT NULL,
		seq       INTEGER NOT NULL,
		time      TEXT    NOT NULL,
		job       TEXT    NOT NULL,
		kind      TEXT    NOT NULL,
		actor     TEXT    NOT NULL,
		payload   BLOB,
		prev_hash TEXT    NOT NULL,
		hash      TEXT    NOT NULL
	);
	CREATE UNIQUE INDEX records_stream_seq ON records (stream, seq);
	CREATE INDEX records_job ON records (job, stream, seq);
	CREATE TABLE blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL);
	PRAGMA user_version = 1;`

// TestMigrateV1 opens a file written with the first schema: its records
// must still be found by job, and their chains continue.
func TestMigrateV1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schemaV1); err != nil {
		t.Fatal(err)
	}
	var prev string
	for i, job := range []string{"j1", "j1", "j2"} {
		r := &demur.Record{Seq: int64(i + 1), Job: job, Stream: "s", Kind: demur.RecTurn, Payload: []byte(`{}`)}
		r.Seal(prev)
		prev = r.Hash
		if _, err := db.Exec(`INSERT INTO records (stream, seq, time, job, kind, actor, payload, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Stream, r.Seq, "0001-01-01T00:00:00Z", r.Job, string(r.Kind), r.Actor, r.Payload, r.PrevHash, r.Hash); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(ctx, &demur.Record{Job: "j2", Stream: "s"}, &demur.Record{Job: "j3", Stream: "t"}); err != nil {
		t.Fatal(err)
	}
	for job, want := range map[string]int{"j1": 2, "j2": 2, "j3": 1, "none": 0} {
		recs, err := s.Records(ctx, demur.Query{Job: job})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != want {
			t.Errorf("job %s: %d records, want %d", job, len(recs), want)
		}
		for _, r := range recs {
			if r.Job != job {
				t.Errorf("job %s: got a record of job %s", job, r.Job)
			}
		}
	}
	recs, err := s.Records(ctx, demur.Query{Stream: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := storetest.VerifyStream(recs); err != nil || len(recs) != 4 {
		t.Fatalf("chain: %d records, %v", len(recs), err)
	}
}
