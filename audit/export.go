package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/demurhq/demur"
)

// ExportFormat names the JSONL export format; it is the header line's
// "demur_export" value.
const ExportFormat = "demur-audit-export-v1"

// ExportHeader is the first line of an export.
type ExportHeader struct {
	Format    string    `json:"demur_export"`
	Canonical string    `json:"canonical"`
	Exported  time.Time `json:"exported"`
	Streams   []string  `json:"streams"`
	// PublicKey is the exporter's checkpoint key (PEM), for convenience
	// only: a verifier that trusts the file's own key proves integrity, not
	// origin; pass the key from a trusted place instead.
	PublicKey string `json:"public_key,omitempty"`
}

// exportLine is one line after the header: a body ({"blob","data"}) or a
// record. A payload that is compact JSON is embedded as is, so the file
// stays readable; any other payload goes in payload_b64. Either way the
// bytes read back are the bytes hashed.
type exportLine struct {
	Blob       string          `json:"blob,omitempty"`
	Data       []byte          `json:"data,omitempty"`
	Seq        int64           `json:"seq,omitempty"`
	Time       *time.Time      `json:"time,omitempty"`
	Job        string          `json:"job,omitempty"`
	Stream     string          `json:"stream,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	Actor      string          `json:"actor,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	PayloadB64 []byte          `json:"payload_b64,omitempty"`
	PrevHash   string          `json:"prev_hash,omitempty"`
	Hash       string          `json:"hash,omitempty"`
}

// ExportStats counts what Export wrote.
type ExportStats struct {
	Records int `json:"records"`
	Blobs   int `json:"blobs"`
	// MissingBlobs counts references to bodies the store does not have;
	// verifying the export will name the records.
	MissingBlobs int `json:"missing_blobs"`
}

// Export writes streams of st (all streams when none are named) to w as
// JSONL: a header, then each stream's records in seq order, each body on
// its own line just before the first record that references it. An export
// verifies offline with ReadExport and Verify.
func Export(ctx context.Context, st demur.Store, w io.Writer, pub []byte, streams ...string) (ExportStats, error) {
	var stats ExportStats
	if len(streams) == 0 {
		var err error
		if streams, err = listStreams(ctx, st); err != nil {
			return stats, fmt.Errorf("export: %w", err)
		}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // embedded payloads must stay byte for byte
	hdr := ExportHeader{Format: ExportFormat, Canonical: demur.CanonicalVersion, Exported: time.Now().UTC(), Streams: streams, PublicKey: string(pub)}
	if err := enc.Encode(hdr); err != nil {
		return stats, fmt.Errorf("export: %w", err)
	}
	written := map[string]bool{}
	for _, name := range streams {
		var after int64
		for {
			recs, err := st.Records(ctx, demur.Query{Stream: name, AfterSeq: after, Limit: PageSize})
			if err != nil {
				return stats, fmt.Errorf("export %s: %w", name, err)
			}
			for _, r := range recs {
				if r.Kind == demur.RecTurn || r.Kind == demur.RecSection {
					if ref := blobRef(r.Payload); ref != "" && !written[ref] {
						written[ref] = true
						data, err := st.Blob(ctx, ref)
						if err != nil {
							stats.MissingBlobs++
						} else {
							if err := enc.Encode(exportLine{Blob: ref, Data: data}); err != nil {
								return stats, fmt.Errorf("export: %w", err)
							}
							stats.Blobs++
						}
					}
				}
				if err := enc.Encode(recordLine(r)); err != nil {
					return stats, fmt.Errorf("export %s/%d: %w", r.Stream, r.Seq, err)
				}
				stats.Records++
			}
			if len(recs) < PageSize {
				break
			}
			after = recs[len(recs)-1].Seq
		}
	}
	if err := bw.Flush(); err != nil {
		return stats, fmt.Errorf("export: %w", err)
	}
	return stats, nil
}

func recordLine(r *demur.Record) exportLine {
	t := r.Time.UTC()
	l := exportLine{Seq: r.Seq, Time: &t, Job: r.Job, Stream: r.Stream, Kind: string(r.Kind), Actor: r.Actor, PrevHash: r.PrevHash, Hash: r.Hash}
	if len(r.Payload) > 0 && json.Valid(r.Payload) {
		var c bytes.Buffer
		if json.Compact(&c, r.Payload) == nil && bytes.Equal(c.Bytes(), r.Payload) {
			l.Payload = r.Payload
			return l
		}
	}
	if len(r.Payload) > 0 {
		l.PayloadB64 = r.Payload
	}
	return l
}

// ExportFile is a parsed export file.
type ExportFile struct {
	Header  ExportHeader
	Records []*demur.Record
	Blobs   map[string][]byte
}

// Blob looks a body up in the file; it suits Options.Blob.
func (f *ExportFile) Blob(hash string) ([]byte, error) {
	if d, ok := f.Blobs[hash]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("blob %s: %w", hash, demur.ErrNotFound)
}

// ReadExport parses an export written by Export. It does not verify it.
func ReadExport(r io.Reader) (*ExportFile, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<20))
	f := &ExportFile{Blobs: map[string][]byte{}}
	if err := dec.Decode(&f.Header); err != nil {
		return nil, fmt.Errorf("read export: header: %w", err)
	}
	if f.Header.Format != ExportFormat {
		return nil, fmt.Errorf("read export: format %q, want %q", f.Header.Format, ExportFormat)
	}
	for line := 2; ; line++ {
		var l exportLine
		err := dec.Decode(&l)
		if err == io.EOF {
			return f, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read export: line %d: %w", line, err)
		}
		if l.Blob != "" {
			if l.Data == nil {
				l.Data = []byte{}
			}
			f.Blobs[l.Blob] = l.Data
			continue
		}
		rec := &demur.Record{Seq: l.Seq, Job: l.Job, Stream: l.Stream, Kind: demur.RecordKind(l.Kind), Actor: l.Actor, PrevHash: l.PrevHash, Hash: l.Hash}
		if l.Time != nil {
			rec.Time = l.Time.UTC()
		}
		switch {
		case l.Payload != nil:
			rec.Payload = []byte(l.Payload)
		case l.PayloadB64 != nil:
			rec.Payload = l.PayloadB64
		}
		f.Records = append(f.Records, rec)
	}
}

// listStreams names st's streams, through its Streams method when it has
// one, else by reading every record once.
func listStreams(ctx context.Context, st demur.Store) ([]string, error) {
	if sl, ok := st.(streamLister); ok {
		return sl.Streams(ctx)
	}
	recs, err := st.Records(ctx, demur.Query{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		if len(out) == 0 || out[len(out)-1] != r.Stream {
			out = append(out, r.Stream)
		}
	}
	return out, nil
}

// Streams lists the streams of st.
func Streams(ctx context.Context, st demur.Store) ([]string, error) {
	s, err := listStreams(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	return s, nil
}
