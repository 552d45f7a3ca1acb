package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/audit"
)

// tamperBase is a signed log of three streams, its bodies, and the witness
// anchors, built once and copied by every tampering.
type tamperBase struct {
	recs    []*demur.Record
	blobs   map[string][]byte
	anchors []*audit.Checkpoint
	pub     ed25519.PublicKey
}

func newTamperBase(t *testing.T) *tamperBase {
	ctx := context.Background()
	st := newMemStore()
	key := testKey(7)
	log := audit.NewLog(st, key, 40)
	wpath := filepath.Join(t.TempDir(), audit.WitnessFile)
	if err := log.SetWitness(wpath); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for i, n := range []int{150, 231, 97} {
		stream := fmt.Sprintf("job-%d", i)
		writeJob(t, log, stream, n, rng)
		if err := log.Checkpoint(ctx, stream); err != nil { // as a job's end does
			t.Fatal(err)
		}
	}
	w, err := audit.LoadWitness(wpath)
	if err != nil {
		t.Fatal(err)
	}
	b := &tamperBase{recs: mustRecords(t, st, demur.Query{}), blobs: st.blobs, anchors: w.Anchors(), pub: key.Public().(ed25519.PublicKey)}
	if len(b.anchors) != 3 {
		t.Fatalf("witness has %d streams, want 3", len(b.anchors))
	}
	return b
}

func (b *tamperBase) copy() ([]*demur.Record, map[string][]byte) {
	recs := make([]*demur.Record, len(b.recs))
	for i, r := range b.recs {
		c := *r
		recs[i] = &c
	}
	return recs, maps(b.blobs)
}

func maps(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (b *tamperBase) verify(recs []*demur.Record, blobs map[string][]byte) *audit.Result {
	return audit.Verify(recs, audit.Options{
		PublicKey: b.pub, Anchors: b.anchors,
		Blob: func(h string) ([]byte, error) {
			if d, ok := blobs[h]; ok {
				return d, nil
			}
			return nil, fmt.Errorf("blob %s: %w", h, demur.ErrNotFound)
		},
	})
}

// span returns the slice indices [lo, hi) of stream's records.
func span(recs []*demur.Record, stream string) (int, int) {
	lo := slices.IndexFunc(recs, func(r *demur.Record) bool { return r.Stream == stream })
	hi := lo
	for hi < len(recs) && recs[hi].Stream == stream {
		hi++
	}
	return lo, hi
}

func (b *tamperBase) anchorSeq(stream string) int64 {
	for _, a := range b.anchors {
		if a.Stream == stream {
			return a.Seq
		}
	}
	return 0
}

// tampering changes a copy of the log and says where Verify must stop.
type tampering struct {
	stream string
	seq    int64
	kinds  []audit.ProblemKind
	what   string
}

type tamperFunc func(b *tamperBase, rng *rand.Rand, recs []*demur.Record, blobs map[string][]byte) ([]*demur.Record, tampering)

// TestTamperSuite applies thousands of random tamperings, one at a time, and
// requires each to be detected in the right stream at exactly the first
// bad seq, with the right kind of problem.
func TestTamperSuite(t *testing.T) {
	b := newTamperBase(t)
	if res := b.verify(b.copy()); !res.OK || res.Checkpoints < 12 || res.Unattested != 3 {
		t.Fatalf("untouched log: %+v", res)
	}
	perKind := 250
	if testing.Short() || raceEnabled {
		perKind = 30
	}
	cases := []struct {
		name string
		fn   tamperFunc
	}{
		{"flip-payload-byte", tamperFlip},
		{"change-field", tamperField},
		{"delete-record", tamperDelete},
		{"swap-records", tamperSwap},
		{"swap-contents", tamperSwapContents},
		{"truncate-tail", tamperTruncate},
		{"rehash-chain", tamperRehash(false)},
		{"rehash-chain-resign-other-key", tamperRehash(true)},
		{"change-body", tamperBlob(false)},
		{"delete-body", tamperBlob(true)},
	}
	rng := rand.New(rand.NewPCG(2026, 4))
	total := 0
	start := time.Now()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := range perKind {
				recs, blobs := b.copy()
				recs, tw := c.fn(b, rng, recs, blobs)
				res := b.verify(recs, blobs)
				total++
				if len(res.Problems) != 1 {
					t.Fatalf("#%d %s: %d problems %+v, want 1 at %s/%d", i, tw.what, len(res.Problems), res.Problems, tw.stream, tw.seq)
				}
				p := res.Problems[0]
				if p.Stream != tw.stream || p.Seq != tw.seq || !slices.Contains(tw.kinds, p.Kind) {
					t.Fatalf("#%d %s: got %s, want %s/%d %v", i, tw.what, p, tw.stream, tw.seq, tw.kinds)
				}
			}
		})
	}
	t.Logf("%d tamperings, all detected at the first bad seq, in %v", total, time.Since(start).Round(time.Millisecond))
}

func pick(rng *rand.Rand, recs []*demur.Record) (string, int, int) {
	stream := recs[rng.IntN(len(recs))].Stream
	lo, hi := span(recs, stream)
	return stream, lo, hi
}

func tamperFlip(_ *tamperBase, rng *rand.Rand, recs []*demur.Record, _ map[string][]byte) ([]*demur.Record, tampering) {
	r := recs[rng.IntN(len(recs))]
	p := bytes.Clone(r.Payload)
	i := rng.IntN(len(p))
	p[i] ^= 1 << rng.IntN(8)
	r.Payload = p
	return recs, tampering{r.Stream, r.Seq, []audit.ProblemKind{audit.ProblemHash}, fmt.Sprintf("flip byte %d of %s/%d (%s)", i, r.Stream, r.Seq, r.Kind)}
}

func tamperField(_ *tamperBase, rng *rand.Rand, recs []*demur.Record, _ map[string][]byte) ([]*demur.Record, tampering) {
	r := recs[rng.IntN(len(recs))]
	field := []string{"time", "job", "kind", "actor", "prev_hash"}[rng.IntN(5)]
	switch field {
	case "time":
		r.Time = r.Time.Add(time.Duration(rng.IntN(1000)+1) * time.Microsecond)
	case "job":
		r.Job += "x"
	case "kind":
		r.Kind = demur.RecOverride
		if r.Kind == recs[0].Kind {
			r.Kind = demur.RecAgent
		}
	case "actor":
		r.Actor = "mallory"
	case "prev_hash":
		r.PrevHash = demur.BlobHash([]byte(r.PrevHash))
	}
	return recs, tampering{r.Stream, r.Seq, []audit.ProblemKind{audit.ProblemHash}, fmt.Sprintf("change %s of %s/%d", field, r.Stream, r.Seq)}
}

// tamperDelete removes one record. The stream's very last record (the
// closing checkpoint itself) is left alone: no signature attests it, and
// its loss is undetectable by design (see docs/audit.md).
func tamperDelete(_ *tamperBase, rng *rand.Rand, recs []*demur.Record, _ map[string][]byte) ([]*demur.Record, tampering) {
	stream, lo, hi := pick(rng, recs)
	i := lo + rng.IntN(hi-lo-1)
	seq := recs[i].Seq
	return slices.Delete(recs, i, i+1), tampering{stream, seq, []audit.ProblemKind{audit.ProblemSeq}, fmt.Sprintf("delete %s/%d", stream, seq)}
}

func twoIndices(rng *rand.Rand, lo, hi int) (int, int) {
	i, j := lo+rng.IntN(hi-lo), lo+rng.IntN(hi-lo-1)
	if j >= i {
		j++
	}
	return min(i, j), max(i, j)
}

func tamperSwap(_ *tamperBase, rng *rand.Rand, recs []*demur.Record, _ map[string][]byte) ([]*demur.Record, tampering) {
	stream, lo, hi := pick(rng, recs)
	i, j := twoIndices(rng, lo, hi)
	seq := recs[i].Seq
	recs[i], recs[j] = recs[j], recs[i]
	return recs, tampering{stream, seq, []audit.ProblemKind{audit.ProblemSeq}, fmt.Sprintf("swap %s/%d and %d", stream, seq, recs[i].Seq)}
}

// tamperSwapContents swaps two records but keeps their seqs in place, as
// swapping the rows of a table ordered by seq would.
func tamperSwapContents(_ *tamperBase, rng *rand.Rand, recs []*demur.Record, _ map[string][]byte) ([]*demur.Record, tampering) {
	stream, lo, hi := pick(rng, recs)
	i, j := twoIndices(rng, lo, hi)
	a, c := *recs[i], *recs[j]
	a.Seq, c.Seq = c.Seq, a.Seq
	recs[i], recs[j] = &c, &a
	return recs, tampering{stream, recs[i].Seq, []audit.ProblemKind{audit.ProblemHash}, fmt.Sprintf("swap contents of %s/%d and %d", stream, recs[i].Seq, recs[j].Seq)}
}

// tamperTruncate cuts a stream's tail from a seq the witness attests.
func tamperTruncate(b *tamperBase, rng *rand.Rand, recs []*demur.Record, _ map[string][]byte) ([]*demur.Record, tampering) {
	stream, lo, hi := pick(rng, recs)
	k := 1 + rng.Int64N(b.anchorSeq(stream))
	return slices.Delete(recs, lo+int(k-1), hi), tampering{stream, k, []audit.ProblemKind{audit.ProblemTruncated}, fmt.Sprintf("truncate %s at %d", stream, k)}
}

// tamperRehash changes one record attested by a signature and re-hashes the
// rest of its stream, as someone with write access but no key would. With
// resign, they also rebuild every later checkpoint and sign it with their
// own key; the first such checkpoint is then the first provably bad record,
// unless the witness window already covers the change.
func tamperRehash(resign bool) tamperFunc {
	forger := testKey(99)
	return func(b *tamperBase, rng *rand.Rand, recs []*demur.Record, _ map[string][]byte) ([]*demur.Record, tampering) {
		stream, lo, hi := pick(rng, recs)
		k := 1 + rng.Int64N(b.anchorSeq(stream))
		r := recs[lo+int(k-1)]
		if r.Kind == demur.RecCheckpoint {
			c, _ := audit.ParseCheckpoint(r.Payload)
			c.Count++ // a plausible forgery: valid JSON, wrong content
			r.Payload, _ = json.Marshal(c)
		} else {
			r.Payload = append(bytes.Clone(r.Payload[:len(r.Payload)-1]), []byte(`,"note":"edited"}`)...)
		}
		want := tampering{stream, k, []audit.ProblemKind{audit.ProblemRewritten}, fmt.Sprintf("rewrite %s/%d (%s) and re-hash", stream, k, r.Kind)}
		if r.Kind == demur.RecCheckpoint {
			want.kinds = append(want.kinds, audit.ProblemCheckpoint, audit.ProblemSignature)
		}
		firstForged := int64(0)
		prev := recs[lo+int(k-1)].PrevHash
		for i := lo + int(k-1); i < hi; i++ {
			r := recs[i]
			if resign && r.Kind == demur.RecCheckpoint {
				c, _ := audit.ParseCheckpoint(r.Payload)
				var hs []byte
				for _, x := range recs[lo+int(c.From-1) : lo+int(c.Seq)] {
					hs = append(hs, x.Hash[:audit.PrefixLen]...)
				}
				c.Hashes, c.Head = string(hs), recs[lo+int(c.Seq-1)].Hash
				c.Sign(forger)
				r.Payload, _ = json.Marshal(c)
				if firstForged == 0 {
					firstForged = r.Seq
				}
			}
			r.Seal(prev)
			prev = r.Hash
		}
		if resign {
			var from int64
			for _, a := range b.anchors {
				if a.Stream == stream {
					from = a.From
				}
			}
			if k < from { // the witness window does not reach back to k
				want.seq, want.kinds = firstForged, []audit.ProblemKind{audit.ProblemSignature}
				if firstForged == k { // the changed checkpoint itself: its content is checked first
					want.kinds = append(want.kinds, audit.ProblemCheckpoint)
				}
				want.what += fmt.Sprintf(", re-sign from %d", firstForged)
			}
		}
		return recs, want
	}
}

// tamperBlob changes or deletes one output body; the first record that
// references it is the first bad one.
func tamperBlob(del bool) tamperFunc {
	return func(_ *tamperBase, rng *rand.Rand, recs []*demur.Record, blobs map[string][]byte) ([]*demur.Record, tampering) {
		stream, lo, hi := pick(rng, recs)
		var refs []*demur.Record
		for _, r := range recs[lo:hi] {
			if r.Kind == demur.RecTurn {
				refs = append(refs, r)
			}
		}
		r := refs[rng.IntN(len(refs))]
		var p demur.TurnPayload
		_ = json.Unmarshal(r.Payload, &p)
		if del {
			delete(blobs, p.Output)
			return recs, tampering{stream, r.Seq, []audit.ProblemKind{audit.ProblemBlob}, fmt.Sprintf("delete body of %s/%d", stream, r.Seq)}
		}
		d := bytes.Clone(blobs[p.Output])
		d[rng.IntN(len(d))] ^= 0x20
		blobs[p.Output] = d
		return recs, tampering{stream, r.Seq, []audit.ProblemKind{audit.ProblemBlob}, fmt.Sprintf("change body of %s/%d", stream, r.Seq)}
	}
}
