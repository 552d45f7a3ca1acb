package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/demurhq/demur"
)

// CheckpointActor is the actor of the checkpoint records a Log writes.
const CheckpointActor = "audit"

// Log is a demur.Store that signs the log as it grows: after every N
// records of a stream it appends a RecCheckpoint record in the same Append
// call, so a checkpoint is durable together with the records it attests.
//
// To sign the head hash within the same call, Log predicts the seq, time
// and hash the store will assign (it sets Time itself and seals each record
// against the stream head it tracks) and checks the prediction after the
// store returns. Every append to a stream must therefore go through one
// Log; a store append that bypasses it makes the next checkpoint of that
// stream attest a stale head, which Append reports as demur.ErrConflict
// and Verify reports as a bad checkpoint.
type Log struct {
	store demur.Store
	key   ed25519.PrivateKey
	every int

	mu      sync.Mutex // guards streams
	streams map[string]*streamState

	wmu     sync.Mutex // guards witness and its file
	witness *Witness
	wpath   string
}

var (
	_ demur.Store        = (*Log)(nil)
	_ demur.BlobAppender = (*Log)(nil)
)

// streamState is what Log knows of one stream's head. Its mutex is held
// across the store's Append, because a prediction is only good while no
// one else appends to the stream.
type streamState struct {
	mu       sync.Mutex
	loaded   bool
	job      string
	seq      int64
	hash     string
	lastKind demur.RecordKind
	from     int64  // first seq of the window the next checkpoint lists
	hashes   []byte // hash prefixes of records from..seq
}

// DefaultEvery is the checkpoint interval demur run uses: a signature costs
// ~50 µs to verify, so one per 512 records keeps verification fast while a
// rewritten record is still pinned by a signature at most 512 records on.
const DefaultEvery = 512

// NewLog wraps store so that a signed checkpoint follows every `every`
// records of each stream (DefaultEvery when every < 1). key must not be nil.
func NewLog(store demur.Store, key ed25519.PrivateKey, every int) *Log {
	if every < 1 {
		every = DefaultEvery
	}
	return &Log{store: store, key: key, every: every, streams: map[string]*streamState{}}
}

// Store returns the wrapped store.
func (l *Log) Store() demur.Store { return l.store }

// PublicKey returns the public half of the signing key.
func (l *Log) PublicKey() ed25519.PublicKey { return l.key.Public().(ed25519.PublicKey) }

// SetWitness makes the Log keep the latest checkpoint of every stream in
// the file at path (JSON, see Witness), rewritten atomically after each
// checkpoint is durable. Records cut from the end of a log take their
// checkpoints with them; the witness, kept apart from the store, is what
// lets Verify notice. Entries already in the file are kept.
func (l *Log) SetWitness(path string) error {
	w, err := LoadWitness(path)
	if errors.Is(err, fs.ErrNotExist) {
		w, err = &Witness{Version: 1, Checkpoints: map[string]*Checkpoint{}}, nil
	}
	if err != nil {
		return err
	}
	l.wmu.Lock()
	l.witness, l.wpath = w, path
	l.wmu.Unlock()
	return nil
}

func (l *Log) state(stream string) *streamState {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.streams[stream]
	if s == nil {
		s = &streamState{}
		l.streams[stream] = s
	}
	return s
}

// lockStreams locks the states of the named streams in name order, so that
// two calls touching the same streams cannot deadlock.
func (l *Log) lockStreams(names []string) (map[string]*streamState, func()) {
	sort.Strings(names)
	m := make(map[string]*streamState, len(names))
	for _, n := range names {
		s := l.state(n)
		s.mu.Lock()
		m[n] = s
	}
	return m, func() {
		for _, s := range m {
			s.mu.Unlock()
		}
	}
}

// Append seals recs against the heads Log tracks, inserts a signed
// checkpoint wherever a stream's window reaches the interval, and appends
// everything in one call to the wrapped store. On error recs are left as
// they were.
func (l *Log) Append(ctx context.Context, recs ...*demur.Record) error {
	return l.AppendWithBlobs(ctx, nil, recs...)
}

// AppendWithBlobs stores blobs and appends recs, as Append, in one commit
// where the store can (demur.BlobAppender).
func (l *Log) AppendWithBlobs(ctx context.Context, blobs [][]byte, recs ...*demur.Record) error {
	if len(recs) == 0 {
		return demur.AppendWithBlobs(ctx, l.store, blobs)
	}
	var names []string
	seen := map[string]bool{}
	for i, r := range recs {
		if r == nil {
			return fmt.Errorf("append: record %d is nil", i)
		}
		if !seen[r.Stream] {
			seen[r.Stream] = true
			names = append(names, r.Stream)
		}
	}
	states, unlock := l.lockStreams(names)
	defer unlock()
	for name, s := range states {
		if err := l.load(ctx, name, s); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	saved := make([]demur.Record, len(recs))
	for i, r := range recs {
		saved[i] = *r
	}
	now := time.Now().UTC().Truncate(time.Microsecond) // what the stores keep
	out := make([]*demur.Record, 0, len(recs)+1)
	var cps []*Checkpoint
	for _, r := range recs {
		if r.Time.IsZero() {
			r.Time = now
		}
		s := states[r.Stream]
		s.seal(r)
		out = append(out, r)
		if len(s.hashes)/PrefixLen >= l.every {
			c, cr := l.checkpoint(r.Stream, r.Job, s, now)
			out, cps = append(out, cr), append(cps, c)
		}
	}
	if err := l.commit(ctx, blobs, out, states); err != nil {
		for i, r := range recs {
			*r = saved[i]
		}
		return err
	}
	l.witnessAll(cps)
	return nil
}

// Checkpoint appends a signed checkpoint of stream now, unless the stream is
// empty or already ends with one. A job calls it at its end, so that its
// last records are attested too.
func (l *Log) Checkpoint(ctx context.Context, stream string) error {
	states, unlock := l.lockStreams([]string{stream})
	defer unlock()
	s := states[stream]
	if err := l.load(ctx, stream, s); err != nil {
		return fmt.Errorf("checkpoint %s: %w", stream, err)
	}
	if s.seq == 0 || s.lastKind == demur.RecCheckpoint {
		return nil
	}
	c, cr := l.checkpoint(stream, s.job, s, time.Now().UTC().Truncate(time.Microsecond))
	if err := l.commit(ctx, nil, []*demur.Record{cr}, states); err != nil {
		return fmt.Errorf("checkpoint %s: %w", stream, err)
	}
	l.witnessAll([]*Checkpoint{c})
	return nil
}

// commit appends out and checks that the store assigned what Log predicted.
// On any failure the touched states are dropped and reread on next use. A
// wrong prediction means someone appended around the Log; it is an error
// only when a checkpoint of this call signed the wrong head (the records
// are durable all the same).
func (l *Log) commit(ctx context.Context, blobs [][]byte, out []*demur.Record, states map[string]*streamState) error {
	predicted := make([]string, len(out))
	for i, r := range out {
		predicted[i] = r.Hash
	}
	if err := demur.AppendWithBlobs(ctx, l.store, blobs, out...); err != nil {
		for _, s := range states {
			s.loaded = false
		}
		return err
	}
	for i, r := range out {
		if r.Hash != predicted[i] {
			for _, s := range states {
				s.loaded = false
			}
			if !hasCheckpoint(out) {
				return nil // nothing signed the wrong head; rereading it is enough
			}
			return fmt.Errorf("append: %s/%d: the store assigned hash %s, not the predicted %s; "+
				"another writer appends to this stream around the audit log: %w", r.Stream, r.Seq, r.Hash, predicted[i], demur.ErrConflict)
		}
	}
	return nil
}

func hasCheckpoint(recs []*demur.Record) bool {
	for _, r := range recs {
		if r.Kind == demur.RecCheckpoint && r.Actor == CheckpointActor {
			return true
		}
	}
	return false
}

// seal gives r the stream's next seq and hash and adds it to the window.
func (s *streamState) seal(r *demur.Record) {
	r.Seq = s.seq + 1
	r.Seal(s.hash)
	s.seq, s.hash, s.job, s.lastKind = r.Seq, r.Hash, r.Job, r.Kind
	s.hashes = append(s.hashes, r.Hash[:PrefixLen]...)
}

// checkpoint builds and seals the signed checkpoint of s's current head.
// The checkpoint record opens the next window.
func (l *Log) checkpoint(stream, job string, s *streamState, now time.Time) (*Checkpoint, *demur.Record) {
	c := &Checkpoint{Stream: stream, Seq: s.seq, Head: s.hash, Count: s.seq, From: s.from, Hashes: string(s.hashes)}
	c.Sign(l.key)
	payload, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("audit: encode checkpoint: %v", err)) // strings and integers always encode
	}
	r := &demur.Record{Time: now, Job: job, Stream: stream, Kind: demur.RecCheckpoint, Actor: CheckpointActor, Payload: payload}
	s.from, s.hashes = s.seq+1, s.hashes[:0]
	s.seal(r)
	return c, r
}

// load reads a stream's head and its records since the last checkpoint, once.
func (l *Log) load(ctx context.Context, stream string, s *streamState) error {
	if s.loaded {
		return nil
	}
	head, err := headSeq(ctx, l.store, stream)
	if err != nil {
		return err
	}
	s.job, s.seq, s.hash, s.lastKind, s.from, s.hashes = "", 0, "", "", 1, s.hashes[:0]
	if head == 0 {
		s.loaded = true
		return nil
	}
	// Windows never exceed `every` records, so the last checkpoint is among
	// the last every+1 records unless the stream was written without a Log.
	after := max(0, head-2*int64(l.every+1))
	recs, err := l.store.Records(ctx, demur.Query{Stream: stream, AfterSeq: after})
	if err != nil {
		return fmt.Errorf("read head of %s: %w", stream, err)
	}
	last := lastCheckpoint(recs)
	if last < 0 && after > 0 {
		if recs, err = l.store.Records(ctx, demur.Query{Stream: stream}); err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		last = lastCheckpoint(recs)
	}
	start := 0
	if last >= 0 {
		c, _ := ParseCheckpoint(recs[last].Payload)
		s.from = c.Seq + 1
		for start < len(recs) && recs[start].Seq < s.from {
			start++
		}
	} else if len(recs) > 0 {
		s.from = recs[0].Seq
	}
	for _, r := range recs[start:] {
		if len(r.Hash) < PrefixLen {
			return fmt.Errorf("read %s: record %d has no hash", stream, r.Seq)
		}
		s.hashes = append(s.hashes, r.Hash[:PrefixLen]...)
	}
	r := recs[len(recs)-1]
	s.seq, s.hash, s.job, s.lastKind = r.Seq, r.Hash, r.Job, r.Kind
	s.loaded = true
	return nil
}

func lastCheckpoint(recs []*demur.Record) int {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Kind == demur.RecCheckpoint {
			if _, err := ParseCheckpoint(recs[i].Payload); err == nil {
				return i
			}
		}
	}
	return -1
}

// HeadSeq returns the last seq of stream in st (0 when empty), using
// O(log n) one-record queries: the Store interface has no "last record"
// query, and reading a whole stream to find its end would be O(n).
func HeadSeq(ctx context.Context, st demur.Store, stream string) (int64, error) {
	return headSeq(ctx, st, stream)
}

func headSeq(ctx context.Context, st demur.Store, stream string) (int64, error) {
	exists := func(n int64) (bool, error) {
		recs, err := st.Records(ctx, demur.Query{Stream: stream, AfterSeq: n - 1, Limit: 1})
		if err != nil {
			return false, fmt.Errorf("read head of %s: %w", stream, err)
		}
		return len(recs) > 0, nil
	}
	ok, err := exists(1)
	if err != nil || !ok {
		return 0, err
	}
	lo, hi := int64(1), int64(2)
	for {
		ok, err := exists(hi)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := exists(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// witnessAll records cps in the witness file. A failure to write it is not
// an append failure (the records are durable); the next checkpoint retries,
// and Verify only loses the protection of a newer anchor.
func (l *Log) witnessAll(cps []*Checkpoint) {
	if len(cps) == 0 {
		return
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.witness == nil {
		return
	}
	for _, c := range cps {
		l.witness.Checkpoints[c.Stream] = c
	}
	_ = l.witness.write(l.wpath)
}

// PutBlob stores data in the wrapped store.
func (l *Log) PutBlob(ctx context.Context, data []byte) (string, error) {
	return l.store.PutBlob(ctx, data)
}

// Blob reads from the wrapped store.
func (l *Log) Blob(ctx context.Context, hash string) ([]byte, error) { return l.store.Blob(ctx, hash) }

// Records reads from the wrapped store.
func (l *Log) Records(ctx context.Context, q demur.Query) ([]*demur.Record, error) {
	return l.store.Records(ctx, q)
}

// Close closes the wrapped store.
func (l *Log) Close() error { return l.store.Close() }

// Witness holds the latest signed checkpoint of each stream, kept outside
// the store (see Log.SetWitness). Its entries are Verify's anchors.
type Witness struct {
	Version     int                    `json:"v"`
	Checkpoints map[string]*Checkpoint `json:"checkpoints"`
}

// WitnessFile is the witness's file name in a key directory.
const WitnessFile = "audit_witness.json"

// LoadWitness reads a witness file.
func LoadWitness(path string) (*Witness, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load witness: %w", err)
	}
	var w Witness
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("load witness %s: %w", path, err)
	}
	if w.Checkpoints == nil {
		w.Checkpoints = map[string]*Checkpoint{}
	}
	return &w, nil
}

// Anchors returns the witness's checkpoints in stream order.
func (w *Witness) Anchors() []*Checkpoint {
	out := make([]*Checkpoint, 0, len(w.Checkpoints))
	for _, k := range sortedKeys(w.Checkpoints) {
		out = append(out, w.Checkpoints[k])
	}
	return out
}

// write replaces the file atomically and syncs it first: a rename of an
// unsynced file can survive a crash as an empty file.
func (w *Witness) write(path string) error {
	data, err := json.MarshalIndent(w, "", " ")
	if err != nil {
		return fmt.Errorf("write witness: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".witness-*")
	if err != nil {
		return fmt.Errorf("write witness: %w", err)
	}
	defer os.Remove(f.Name())
	// Not secret: anyone who verifies may read it.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write witness: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write witness: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write witness: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write witness: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write witness: %w", err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
