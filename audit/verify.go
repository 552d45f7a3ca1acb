package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/demurhq/demur"
)

// ProblemKind classifies what is wrong with a record.
type ProblemKind string

// The problems Verify reports.
const (
	// ProblemSeq: a seq is missing or out of order (a record deleted or moved).
	ProblemSeq ProblemKind = "seq"
	// ProblemHash: the record's content does not hash to its Hash (a field changed).
	ProblemHash ProblemKind = "hash"
	// ProblemLink: PrevHash is not the previous record's Hash.
	ProblemLink ProblemKind = "link"
	// ProblemBlob: a referenced body is missing or does not hash to its reference.
	ProblemBlob ProblemKind = "blob"
	// ProblemCheckpoint: a checkpoint is malformed or attests the wrong place.
	ProblemCheckpoint ProblemKind = "checkpoint"
	// ProblemSignature: a checkpoint's signature is invalid or by another key.
	ProblemSignature ProblemKind = "signature"
	// ProblemRewritten: a record hashes consistently but is not the one a
	// signed checkpoint attests: the chain was re-hashed after a change.
	ProblemRewritten ProblemKind = "rewritten"
	// ProblemTruncated: the stream ends before a record a trusted (witness)
	// checkpoint attests.
	ProblemTruncated ProblemKind = "truncated"
)

// Problem is the first broken record of a stream and what is wrong with it.
type Problem struct {
	Stream string      `json:"stream"`
	Seq    int64       `json:"seq"`
	Kind   ProblemKind `json:"kind"`
	What   string      `json:"what"`
}

// String formats p as "stream/seq: kind: what".
func (p Problem) String() string {
	return fmt.Sprintf("%s/%d: %s: %s", p.Stream, p.Seq, p.Kind, p.What)
}

// Result is the outcome of a verification.
type Result struct {
	OK          bool  `json:"ok"`
	Records     int64 `json:"records"`
	Streams     int   `json:"streams"`
	Checkpoints int   `json:"checkpoints"`
	// Signatures counts checkpoint and anchor signatures verified; 0 when
	// no public key was given.
	Signatures int `json:"signatures_checked"`
	Blobs      int `json:"blobs_checked"`
	Anchors    int `json:"anchors"`
	// Unattested counts records after their stream's last signed checkpoint
	// and not covered by an anchor: the hash chain protects them from
	// change, but nothing signed stops them from being cut off the end.
	Unattested int64 `json:"unattested"`
	// Problems holds the first problem of each broken stream, in the order
	// found. Verification of a stream stops at its first problem: what
	// follows a broken record cannot be trusted either way.
	Problems []Problem `json:"problems,omitempty"`
}

// First returns the first problem found, or nil.
func (r *Result) First() *Problem {
	if len(r.Problems) == 0 {
		return nil
	}
	return &r.Problems[0]
}

// Options configure a verification.
type Options struct {
	// PublicKey verifies checkpoint signatures; nil skips them, which
	// checks integrity only: whoever can write the store could then
	// rewrite it and its checkpoints consistently.
	PublicKey ed25519.PublicKey
	// Blob returns a stored body by hash; nil skips the blob checks.
	Blob func(hash string) ([]byte, error)
	// Anchors are trusted checkpoints kept outside the log (a witness
	// file, an earlier export); they catch a tail cut off the log.
	Anchors []*Checkpoint
}

// Verifier checks records one at a time, so that a log larger than memory
// can be verified page by page. Records of each stream must come in seq
// order; streams may interleave.
type Verifier struct {
	opts    Options
	res     Result
	streams map[string]*vstream
	order   []*vstream
	cur     *vstream
	buf     []byte
	blobs   map[string]bool
	pubID   string
}

type vstream struct {
	name   string
	seq    int64
	hash   string
	from   int64  // first seq of the current checkpoint window
	window []byte // hash prefixes of records from..seq
	anchor *Checkpoint
	failed bool
}

// NewVerifier returns a Verifier with opts.
func NewVerifier(opts Options) *Verifier {
	v := &Verifier{opts: opts, streams: map[string]*vstream{}, blobs: map[string]bool{}, buf: make([]byte, 0, 4096)}
	if opts.PublicKey != nil {
		v.pubID = KeyID(opts.PublicKey)
	}
	for _, a := range opts.Anchors {
		s := v.stream(a.Stream)
		v.res.Anchors++
		if err := a.check(); err != nil {
			v.fail(s, a.Seq, ProblemCheckpoint, "witness checkpoint: %v", err)
			continue
		}
		if opts.PublicKey != nil {
			v.res.Signatures++
			if err := a.CheckSignature(opts.PublicKey); err != nil {
				v.fail(s, a.Seq, ProblemSignature, "witness checkpoint %v", err)
				continue
			}
		}
		if s.anchor == nil || a.Seq > s.anchor.Seq {
			s.anchor = a
		}
	}
	return v
}

func (v *Verifier) stream(name string) *vstream {
	if v.cur != nil && v.cur.name == name {
		return v.cur
	}
	s := v.streams[name]
	if s == nil {
		s = &vstream{name: name, from: 1}
		v.streams[name] = s
		v.order = append(v.order, s)
	}
	v.cur = s
	return s
}

func (v *Verifier) fail(s *vstream, seq int64, kind ProblemKind, format string, args ...any) {
	if s.failed {
		return
	}
	s.failed = true
	v.res.Problems = append(v.res.Problems, Problem{Stream: s.name, Seq: seq, Kind: kind, What: fmt.Sprintf(format, args...)})
}

// Add checks the next record of its stream.
func (v *Verifier) Add(r *demur.Record) {
	v.add(r, v.hashOK(r))
}

// hashOK reports whether r's content hashes to r.Hash.
func (v *Verifier) hashOK(r *demur.Record) bool {
	v.buf = r.AppendCanonical(v.buf[:0])
	return hashMatches(v.buf, r.Hash)
}

func hashMatches(canonical []byte, want string) bool {
	sum := sha256.Sum256(canonical)
	var hx [64]byte
	hex.Encode(hx[:], sum[:])
	return string(hx[:]) == want
}

// parallelMin is the batch size from which AddAll hashes on every CPU.
const parallelMin = 4096

// AddAll checks recs in order, as Add does one by one, but computes the
// record hashes (most of the work) on all CPUs first.
func (v *Verifier) AddAll(recs []*demur.Record) {
	workers := runtime.GOMAXPROCS(0)
	if len(recs) < parallelMin || workers < 2 {
		for _, r := range recs {
			v.Add(r)
		}
		return
	}
	ok := make([]bool, len(recs))
	chunk := (len(recs) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(recs); lo += chunk {
		hi := min(lo+chunk, len(recs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 4096)
			for i := lo; i < hi; i++ {
				buf = recs[i].AppendCanonical(buf[:0])
				ok[i] = hashMatches(buf, recs[i].Hash)
			}
		}()
	}
	wg.Wait()
	for i, r := range recs {
		v.add(r, ok[i])
	}
}

func (v *Verifier) add(r *demur.Record, hashOK bool) {
	s := v.stream(r.Stream)
	if s.failed {
		return
	}
	v.res.Records++
	if want := s.seq + 1; r.Seq != want {
		if r.Seq > want {
			v.fail(s, want, ProblemSeq, "seq %d follows seq %d: record %d is missing or was moved", r.Seq, s.seq, want)
		} else {
			v.fail(s, want, ProblemSeq, "seq %d follows seq %d: records out of order or duplicated", r.Seq, s.seq)
		}
		return
	}
	if !hashOK {
		v.buf = r.AppendCanonical(v.buf[:0])
		sum := sha256.Sum256(v.buf)
		v.fail(s, r.Seq, ProblemHash, "stored hash %s but the record hashes to %s: a field was changed after it was written", short(r.Hash), short(hex.EncodeToString(sum[:])))
		return
	}
	if r.PrevHash != s.hash {
		v.fail(s, r.Seq, ProblemLink, "prev_hash %s is not the hash %s of record %d: a record before it was removed, replaced or reordered", short(r.PrevHash), short(s.hash), s.seq)
		return
	}
	// A checkpoint speaks for the records before it, so it is checked
	// before anything that would blame this record.
	if r.Kind == demur.RecCheckpoint {
		if !v.checkCheckpoint(s, r) {
			return
		}
		s.from, s.window = s.seq+1, s.window[:0]
	}
	if a := s.anchor; a != nil && r.Seq >= a.From && r.Seq <= a.Seq {
		if p := a.prefix(r.Seq); r.Hash[:PrefixLen] != p {
			v.fail(s, r.Seq, ProblemRewritten, "hash %s… but the witness checkpoint of seq %d signed %s…: the record was replaced and the chain re-hashed", r.Hash[:PrefixLen], a.Seq, p)
			return
		}
		if r.Seq == a.Seq && r.Hash != a.Head {
			v.fail(s, r.Seq, ProblemRewritten, "hash %s but the witness checkpoint signed head %s", short(r.Hash), short(a.Head))
			return
		}
	}
	if (r.Kind == demur.RecTurn || r.Kind == demur.RecSection) && v.opts.Blob != nil {
		if !v.checkBlob(s, r) {
			return
		}
	}
	s.seq, s.hash = r.Seq, r.Hash
	s.window = append(s.window, r.Hash[:PrefixLen]...)
}

var blobKey = []byte(`"output_blob":"`)

// blobRef finds a payload's output_blob reference without decoding the
// whole payload: decoding every turn would cost more than hashing it.
func blobRef(payload []byte) string {
	i := bytes.Index(payload, blobKey)
	if i < 0 {
		if !bytes.Contains(payload, []byte("output_blob")) {
			return ""
		}
		var p struct {
			Output string `json:"output_blob"`
		}
		_ = json.Unmarshal(payload, &p) // malformed JSON references nothing
		return p.Output
	}
	rest := payload[i+len(blobKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func (v *Verifier) checkBlob(s *vstream, r *demur.Record) bool {
	ref := blobRef(r.Payload)
	if ref == "" {
		return true
	}
	ok, seen := v.blobs[ref]
	if !seen {
		data, err := v.opts.Blob(ref)
		switch {
		case errors.Is(err, demur.ErrNotFound):
			v.blobs[ref] = false
			v.fail(s, r.Seq, ProblemBlob, "body %s is missing from the store", short(ref))
			return false
		case err != nil:
			v.fail(s, r.Seq, ProblemBlob, "body %s: %v", short(ref), err)
			return false
		}
		v.res.Blobs++
		sum := sha256.Sum256(data)
		ok = hex.EncodeToString(sum[:]) == ref
		v.blobs[ref] = ok
	}
	if !ok {
		v.fail(s, r.Seq, ProblemBlob, "body %s was changed: it no longer hashes to its reference", short(ref))
	}
	return ok
}

func (v *Verifier) checkCheckpoint(s *vstream, r *demur.Record) bool {
	c, err := ParseCheckpoint(r.Payload)
	if err != nil {
		v.fail(s, r.Seq, ProblemCheckpoint, "%v", err)
		return false
	}
	if err := c.check(); err != nil {
		v.fail(s, r.Seq, ProblemCheckpoint, "%v", err)
		return false
	}
	if c.Stream != s.name {
		v.fail(s, r.Seq, ProblemCheckpoint, "checkpoint of stream %q in stream %q", c.Stream, s.name)
		return false
	}
	if v.opts.PublicKey != nil {
		v.res.Signatures++
		if err := c.CheckSignature(v.opts.PublicKey); err != nil {
			v.fail(s, r.Seq, ProblemSignature, "checkpoint %v", err)
			return false
		}
	}
	if c.Seq != s.seq || c.From != s.from {
		v.fail(s, r.Seq, ProblemCheckpoint, "checkpoint attests records %d..%d but follows records %d..%d", c.From, c.Seq, s.from, s.seq)
		return false
	}
	// The window is compared before the head, so that a re-hashed chain is
	// reported at the record that was changed, not at the checkpoint.
	if string(s.window) != c.Hashes {
		for seq := c.From; seq <= c.Seq; seq++ {
			i := (seq - c.From) * PrefixLen
			if got, want := string(s.window[i:i+PrefixLen]), c.prefix(seq); got != want {
				v.fail(s, seq, ProblemRewritten, "hash %s… but checkpoint %d signed %s…: the record was replaced and the chain re-hashed", got, r.Seq, want)
				return false
			}
		}
	}
	if c.Head != s.hash {
		v.fail(s, c.Seq, ProblemRewritten, "hash %s but checkpoint %d signed head %s", short(s.hash), r.Seq, short(c.Head))
		return false
	}
	v.res.Checkpoints++
	return true
}

// Result finishes the verification: it checks that no stream ends before
// its anchor and returns the outcome.
func (v *Verifier) Result() *Result {
	res := v.res
	res.Problems = append([]Problem(nil), v.res.Problems...)
	res.Streams = len(v.order)
	for _, s := range v.order {
		if s.failed {
			continue
		}
		if a := s.anchor; a != nil && s.seq < a.Seq {
			res.Problems = append(res.Problems, Problem{Stream: s.name, Seq: s.seq + 1, Kind: ProblemTruncated,
				What: fmt.Sprintf("the stream ends at seq %d but the witness checkpoint attests %d records: records %d..%d were cut off", s.seq, a.Seq, s.seq+1, a.Seq)})
			continue
		}
		unattested := s.seq - (s.from - 1)
		if a := s.anchor; a != nil {
			unattested = min(unattested, s.seq-a.Seq)
		}
		res.Unattested += unattested
	}
	res.OK = len(res.Problems) == 0
	return &res
}

// Verify checks recs (each stream's records in seq order) with opts.
func Verify(recs []*demur.Record, opts Options) *Result {
	v := NewVerifier(opts)
	v.AddAll(recs)
	return v.Result()
}

// streamLister is implemented by the stores that can list their streams
// (sqlite, postgres); it lets VerifyStore read one stream at a time.
type streamLister interface {
	Streams(ctx context.Context) ([]string, error)
}

// PageSize is how many records VerifyStore reads per query.
const PageSize = 20000

// VerifyStore verifies every stream of st, or only the given streams,
// reading PageSize records at a time. Unless opts.Blob is set, bodies are
// read from st.
func VerifyStore(ctx context.Context, st demur.Store, opts Options, streams ...string) (*Result, error) {
	if opts.Blob == nil {
		opts.Blob = func(h string) ([]byte, error) { return st.Blob(ctx, h) }
	}
	if len(streams) == 0 {
		sl, ok := st.(streamLister)
		if !ok {
			recs, err := st.Records(ctx, demur.Query{})
			if err != nil {
				return nil, fmt.Errorf("verify: %w", err)
			}
			return Verify(recs, opts), nil
		}
		var err error
		if streams, err = sl.Streams(ctx); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	v := NewVerifier(opts)
	for _, name := range streams {
		var after int64
		for {
			recs, err := st.Records(ctx, demur.Query{Stream: name, AfterSeq: after, Limit: PageSize})
			if err != nil {
				return nil, fmt.Errorf("verify %s: %w", name, err)
			}
			v.AddAll(recs)
			if len(recs) < PageSize {
				break
			}
			after = recs[len(recs)-1].Seq
		}
	}
	return v.Result(), nil
}

// short abbreviates a hash for messages.
func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	if h == "" {
		return `""`
	}
	return h
}
