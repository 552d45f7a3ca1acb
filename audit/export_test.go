package audit_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/audit"
)

func TestExportRoundTrip(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	key := testKey(3)
	log := audit.NewLog(st, key, 8)
	writeJob(t, log, "job-a", 30, rand.New(rand.NewPCG(5, 6)))
	odd := []string{"not json \x00\xff\xfe", `{"b":1,  "a":[ 1.50 ]}`, "null", `{"html":"<a&b>"}`, "\"\u2028\"", ""}
	for _, p := range odd {
		if err := log.Append(ctx, &demur.Record{Job: "job-b", Stream: "job-b", Kind: demur.RecOverride, Actor: "ünïcode", Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.Checkpoint(ctx, "job-b"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	pub, _ := audit.MarshalPublicKey(log.PublicKey())
	stats, err := audit.Export(ctx, st, &buf, pub)
	if err != nil {
		t.Fatal(err)
	}
	want := mustRecords(t, st, demur.Query{})
	if stats.Records != len(want) || stats.Blobs == 0 || stats.MissingBlobs != 0 {
		t.Fatalf("stats %+v for %d records", stats, len(want))
	}
	if n := strings.Count(buf.String(), "\n"); n != 1+stats.Records+stats.Blobs {
		t.Fatalf("%d lines, want one per record and body plus the header", n)
	}
	f, err := audit.ReadExport(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range f.Records {
		w := want[i]
		if !bytes.Equal(r.Payload, w.Payload) || r.Hash != w.Hash || !r.Time.Equal(w.Time) || r.Actor != w.Actor {
			t.Fatalf("record %d: %q, want %q", i, r.Payload, w.Payload)
		}
	}
	opts := audit.Options{PublicKey: key.Public().(ed25519PublicKey), Blob: f.Blob}
	if res := audit.Verify(f.Records, opts); !res.OK || res.Blobs == 0 || res.Checkpoints < 4 {
		t.Fatalf("verify export: %+v", res)
	}
	// An edit to the file is an edit to the log.
	text := buf.String()
	i := strings.Index(text, `"kind":"verdict"`)
	edited := text[:i] + strings.Replace(text[i:], `"comply"`, `"refuse"`, 1)
	f, err = audit.ReadExport(strings.NewReader(edited))
	if err != nil {
		t.Fatal(err)
	}
	res := audit.Verify(f.Records, opts)
	if p := res.First(); p == nil || p.Kind != audit.ProblemHash || p.Stream != "job-a" {
		t.Fatalf("edited export: %+v", res)
	}
}
