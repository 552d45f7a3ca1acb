package audit_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/audit"
)

// memStore is a minimal in-memory demur.Store with the stores' sealing
// rules, so that the audit tests run in microseconds per append.
type memStore struct {
	mu      sync.Mutex
	streams map[string][]demur.Record
	blobs   map[string][]byte
}

func newMemStore() *memStore {
	return &memStore{streams: map[string][]demur.Record{}, blobs: map[string][]byte{}}
}

func (m *memStore) Append(_ context.Context, recs ...*demur.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now().UTC().Truncate(time.Microsecond)
	heads := map[string]int{}
	var out []demur.Record
	for _, r := range recs {
		c := *r
		st := m.streams[c.Stream]
		n := len(st) + heads[c.Stream]
		prev := ""
		if heads[c.Stream] > 0 {
			prev = out[lastIndex(out, c.Stream)].Hash
		} else if len(st) > 0 {
			prev = st[len(st)-1].Hash
		}
		c.Seq = int64(n + 1)
		if c.Time.IsZero() {
			c.Time = now
		}
		c.Time = c.Time.UTC()
		c.Seal(prev)
		heads[c.Stream]++
		out = append(out, c)
	}
	for i, r := range recs {
		*r = out[i]
		m.streams[r.Stream] = append(m.streams[r.Stream], out[i])
	}
	return nil
}

func lastIndex(recs []demur.Record, stream string) int {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Stream == stream {
			return i
		}
	}
	return -1
}

func (m *memStore) PutBlob(_ context.Context, data []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := demur.BlobHash(data)
	m.blobs[h] = append([]byte(nil), data...)
	return h, nil
}

func (m *memStore) Blob(_ context.Context, h string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[h]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", h, demur.ErrNotFound)
	}
	return b, nil
}

func (m *memStore) Records(_ context.Context, q demur.Query) ([]*demur.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.streams))
	for n := range m.streams {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*demur.Record
	for _, n := range names {
		if q.Stream != "" && n != q.Stream {
			continue
		}
		for _, r := range m.streams[n] {
			if q.Job != "" && r.Job != q.Job || r.Seq <= q.AfterSeq || !kindIn(r.Kind, q.Kinds) {
				continue
			}
			c := r
			out = append(out, &c)
			if q.Limit > 0 && len(out) == q.Limit {
				return out, nil
			}
		}
	}
	return out, nil
}

func kindIn(k demur.RecordKind, ks []demur.RecordKind) bool {
	if len(ks) == 0 {
		return true
	}
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func (m *memStore) Close() error { return nil }

// testKey is a fixed key, so that failures reproduce.
func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	return ed25519.NewKeyFromSeed(s)
}

// writeJob appends n records shaped like a coordinator's to stream: assign,
// turn (output as a blob), verdict, decision, section.done, in batches of
// one task, as coord's flushes are.
func writeJob(t testing.TB, st demur.Store, stream string, n int, rng *rand.Rand) {
	t.Helper()
	ctx := context.Background()
	mk := func(kind demur.RecordKind, actor string, p any) *demur.Record {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return &demur.Record{Job: stream, Stream: stream, Kind: kind, Actor: actor, Payload: data}
	}
	if err := st.Append(ctx, mk(demur.RecJobStart, "coordinator", demur.JobStartPayload{Seed: 1, Sections: n / 5})); err != nil {
		t.Fatal(err)
	}
	for i, written := 0, 1; written < n; i++ {
		task := fmt.Sprintf("c%02ds%02d", i/10+1, i%10+1)
		out := fmt.Sprintf("Section %s of %s. %d %x", task, stream, rng.Int64(), rng.Uint64())
		blob, err := st.PutBlob(ctx, []byte(out))
		if err != nil {
			t.Fatal(err)
		}
		batch := []*demur.Record{
			mk(demur.RecAssign, "coordinator", demur.AssignPayload{Task: task, Agent: "agent-01", Attempt: 1}),
			mk(demur.RecTurn, "agent-01", demur.TurnPayload{Task: task, Agent: "agent-01", Attempt: 1, Prompt: "Write " + task, Output: blob, OutputBytes: len(out), Words: 5}),
			mk(demur.RecVerdict, "detector", demur.VerdictPayload{Task: task, Agent: "agent-01", Attempt: 1, Verdict: demur.Verdict{Kind: demur.KindComply, Confidence: 0.9}}),
			mk(demur.RecDecision, "router", demur.DecisionPayload{Task: task, Agent: "agent-01", Attempt: 1, Decision: demur.Decision{Action: demur.ActionAccept, Rule: "comply"}}),
			mk(demur.RecSection, "coordinator", demur.SectionPayload{Task: task, Index: i, Agent: "agent-01", Attempt: 1, Output: blob, Words: 5}),
		}
		if k := rng.IntN(len(batch)) + 1; written+k < n && rng.IntN(3) == 0 {
			batch = batch[:k] // uneven batches move the checkpoints around
		}
		batch = batch[:min(len(batch), n-written)]
		if err := st.Append(ctx, batch...); err != nil {
			t.Fatal(err)
		}
		written += len(batch)
	}
}

var _ demur.Store = (*audit.Log)(nil)
