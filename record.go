package demur

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// RecordKind names what a record is about.
type RecordKind string

// Record kinds written by demur.
const (
	RecJobStart   RecordKind = "job.start"    // payload: the job spec and plan
	RecAssign     RecordKind = "task.assign"  // a task handed to an agent
	RecTurn       RecordKind = "turn"         // a backend exchange; output by blob hash
	RecVerdict    RecordKind = "verdict"      // the detector's verdict on a turn
	RecDecision   RecordKind = "decision"     // the router's decision on a verdict
	RecTruth      RecordKind = "truth"        // a simulator's ground truth, for scoring only
	RecSection    RecordKind = "section.done" // a task's output accepted into the artifact
	RecAgent      RecordKind = "agent.state"  // an agent joined, retired, ...
	RecJobEnd     RecordKind = "job.end"      // final status and totals
	RecOverride   RecordKind = "override"     // an override attempt, accepted or not
	RecToken      RecordKind = "token"        // an operator token issued or revoked (its hash, never the secret)
	RecCheckpoint RecordKind = "checkpoint"   // a signed checkpoint
)

// Record is one entry of the audit log. Records of one stream form a hash
// chain: Hash = SHA-256 over the canonical encoding of every other field,
// which includes PrevHash.
type Record struct {
	Seq    int64      `json:"seq"`
	Time   time.Time  `json:"time"`
	Job    string     `json:"job"`
	Stream string     `json:"stream"`
	Kind   RecordKind `json:"kind"`
	Actor  string     `json:"actor"`
	// Payload is JSON, hashed and stored byte for byte as given.
	Payload  []byte `json:"payload"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// CanonicalVersion tags the canonical encoding; it is the first field hashed.
const CanonicalVersion = "demur-record-v1"

// Canonical returns the record's canonical encoding: the version tag, then
// seq, time (RFC 3339 with nanoseconds, UTC), job, stream, kind, actor,
// payload and prev_hash, each as a uvarint byte length followed by the bytes.
func (r *Record) Canonical() []byte {
	n := len(CanonicalVersion) + 20 + 35 + len(r.Job) + len(r.Stream) + len(r.Kind) +
		len(r.Actor) + len(r.Payload) + len(r.PrevHash) + 9*binary.MaxVarintLen64
	return r.AppendCanonical(make([]byte, 0, n))
}

// AppendCanonical appends the canonical encoding (see Canonical) to dst and
// returns the extended slice. It lets a verifier reuse one buffer for
// millions of records instead of allocating per record.
func (r *Record) AppendCanonical(dst []byte) []byte {
	var scratch [40]byte
	dst = appendField(dst, []byte(CanonicalVersion))
	dst = appendField(dst, strconv.AppendInt(scratch[:0], r.Seq, 10))
	dst = appendField(dst, r.Time.UTC().AppendFormat(scratch[:0], time.RFC3339Nano))
	dst = appendString(dst, r.Job)
	dst = appendString(dst, r.Stream)
	dst = appendString(dst, string(r.Kind))
	dst = appendString(dst, r.Actor)
	dst = appendField(dst, r.Payload)
	return appendString(dst, r.PrevHash)
}

func appendField(dst, f []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(f)))
	return append(dst, f...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// ComputeHash returns the hex SHA-256 of the record's canonical encoding.
func (r *Record) ComputeHash() string {
	bp := canonicalBufs.Get().(*[]byte)
	b := r.AppendCanonical((*bp)[:0])
	sum := sha256.Sum256(b)
	if cap(b) <= maxPooledCanonical {
		*bp = b[:0]
		canonicalBufs.Put(bp)
	}
	return hex.EncodeToString(sum[:])
}

// canonicalBufs recycles ComputeHash's encoding buffers: every append
// hashes every record, and on a busy log the buffers were most of what
// hashing allocated. A buffer grown by a huge payload is left to the GC.
var canonicalBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledCanonical = 64 << 10

// Seal sets PrevHash to prev and Hash to the record's hash.
func (r *Record) Seal(prev string) {
	r.PrevHash = prev
	r.Hash = r.ComputeHash()
}

// Validate rejects what some store could not hold or give back exactly,
// so that every store accepts the same records: a record needs a stream;
// stream, job, kind and actor must be UTF-8 without NUL (PostgreSQL text
// holds neither); the time must lie in years 1–9999, which RFC 3339 (the
// hashed form) can parse back.
func (r *Record) Validate() error {
	if r.Stream == "" {
		return errors.New("no stream")
	}
	for _, f := range [...]struct{ name, v string }{
		{"stream", r.Stream}, {"job", r.Job}, {"kind", string(r.Kind)}, {"actor", r.Actor},
	} {
		if !utf8.ValidString(f.v) || strings.IndexByte(f.v, 0) >= 0 {
			return fmt.Errorf("%s %q is not valid UTF-8 text without NUL", f.name, f.v)
		}
	}
	if y := r.Time.UTC().Year(); !r.Time.IsZero() && (y < 1 || y > 9999) {
		return fmt.Errorf("time %v outside years 1-9999", r.Time)
	}
	return nil
}

// DetachForAppend validates records handed to Store.Append and returns
// copies for the store to fill in, so that a failed Append leaves the
// caller's records untouched. Stores call it first, then SettleAppend.
func DetachForAppend(recs []*Record) ([]Record, error) {
	out := make([]Record, len(recs))
	for i, r := range recs {
		if r == nil {
			return nil, fmt.Errorf("record %d is nil", i)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		out[i] = *r
	}
	return out, nil
}

// SettleAppend copies what a store assigned (Seq, Time, PrevHash, Hash)
// back into the caller's records once the append is durable.
func SettleAppend(recs []*Record, done []Record) {
	for i, r := range recs {
		c := &done[i]
		r.Seq, r.Time, r.PrevHash, r.Hash = c.Seq, c.Time, c.PrevHash, c.Hash
	}
}

// BlobHash returns the content address of a body stored apart from records.
func BlobHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Query selects records. Zero fields select everything.
type Query struct {
	Job    string
	Stream string
	Kinds  []RecordKind
	// AfterSeq selects records with Seq > AfterSeq (within Stream).
	AfterSeq int64
	// Limit bounds the count; 0 means no bound.
	Limit int
}

// ErrNotFound is returned when a blob or record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when an append would break a stream's chain, for
// example because another writer appended first.
var ErrConflict = errors.New("conflict")

// Store is the durable audit log. Append assigns Seq (per stream, from 1),
// Time when zero, PrevHash and Hash, and returns only once the records are
// durable. Implementations are safe for concurrent use.
type Store interface {
	Append(ctx context.Context, recs ...*Record) error
	// PutBlob stores data by content hash and returns the hash; storing the
	// same data twice is a no-op.
	PutBlob(ctx context.Context, data []byte) (string, error)
	// Blob returns the data stored under hash, or ErrNotFound.
	Blob(ctx context.Context, hash string) ([]byte, error)
	// Records returns the records that match q in stream and seq order.
	Records(ctx context.Context, q Query) ([]*Record, error)
	Close() error
}

// Blob is a body a store keeps by content address.
type Blob struct {
	Hash string // BlobHash(Data)
	Data []byte
}

// HashBlobs pairs each body with its hash. A nil body becomes an empty
// one: stores keep bodies in NOT NULL columns, where nil would be NULL.
func HashBlobs(data [][]byte) []Blob {
	out := make([]Blob, len(data))
	for i, d := range data {
		if d == nil {
			d = []byte{}
		}
		out[i] = Blob{Hash: BlobHash(d), Data: d}
	}
	return out
}

// BlobAppender is implemented by stores that can write blobs and the
// records that name them in one commit. AppendWithBlobs uses it.
type BlobAppender interface {
	// AppendWithBlobs stores blobs and appends recs, as Append, in one
	// atomic commit: the records are never durable without their blobs.
	AppendWithBlobs(ctx context.Context, blobs [][]byte, recs ...*Record) error
}

// AppendWithBlobs stores blobs and then appends recs to st. A store that
// implements BlobAppender does both in one commit, which saves a commit
// for every output a caller records; any other store gets PutBlob for each
// blob and then Append, which keeps the order (a blob left behind by a
// failed Append is unreferenced, not lost).
func AppendWithBlobs(ctx context.Context, st Store, blobs [][]byte, recs ...*Record) error {
	if ba, ok := st.(BlobAppender); ok && len(blobs) > 0 {
		return ba.AppendWithBlobs(ctx, blobs, recs...)
	}
	for _, b := range blobs {
		if _, err := st.PutBlob(ctx, b); err != nil {
			return err
		}
	}
	return st.Append(ctx, recs...)
}
