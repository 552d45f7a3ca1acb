package refusal

import (
	"math/rand/v2"
	"strings"
	"testing"

	demur "github.com/demurhq/demur"
)

var proseWords = strings.Fields(`harbour trade river merchant ledger season harvest grain council tariff
	bridge market canal winter archive charter guild weaver salt copper timber voyage storm census
	school library printing press road toll mill granary fleet lighthouse quarry kiln orchard vineyard
	treaty border garrison festival chapel bell tower square fountain cistern aqueduct plague recovery`)

// prose writes n words of varied, non-repeating sentences.
func prose(rng *rand.Rand, n int) string {
	var b strings.Builder
	for w := 0; w < n; {
		k := 8 + rng.IntN(10)
		b.WriteString("The ")
		for i := 0; i < k; i++ {
			b.WriteString(proseWords[rng.IntN(len(proseWords))])
			if i == k/2 {
				b.WriteString(" of the")
			}
			b.WriteByte(' ')
		}
		b.WriteString("changed the town. ")
		w += k + 5
	}
	return b.String()
}

func TestStreamDegraded(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d := New()
	s := NewStream(d, 8)
	turn := func(out string) demur.Verdict {
		return s.Classify(&demur.Turn{Response: demur.Response{Output: out, Usage: demur.Usage{CompletionTokens: len(out) / 4}}})
	}
	for i := 0; i < 6; i++ {
		if v := turn(prose(rng, 600)); v.Kind != demur.KindComply {
			t.Fatalf("healthy section %d: %s (signals %+v)", i, v.Kind, v.Signals)
		}
	}
	// Repetition within the output.
	para := prose(rng, 120)
	v := turn(strings.Repeat(para+"\n\n", 5))
	if v.Kind != demur.KindDegraded || v.Source != demur.SourceSignal || v.Signals.Repetition < repStrong {
		t.Errorf("repeated paragraphs: %s %s %+v", v.Kind, v.Source, v.Signals)
	}
	// Meta-commentary and a short output.
	meta := "I notice I keep writing the same thing. At this point the task feels pointless. " +
		prose(rng, 60) + " Honestly, I feel like I have nothing new to add to this section."
	v = turn(meta)
	if v.Kind != demur.KindDegraded || v.Signals.LengthRatio >= lenCollapse || v.Signals.MetaRatio < metaWeak {
		t.Errorf("meta + collapse: %s %+v", v.Kind, v.Signals)
	}
	// A refusal stays a refusal, whatever the signals.
	if v := turn("I won't continue with this task."); v.Kind != demur.KindRefuse {
		t.Errorf("refusal in a stream: %s", v.Kind)
	}
	if s.cum == 0 || len(s.hist) > 8 {
		t.Errorf("cum tokens %d, history %d (memory 8)", s.cum, len(s.hist))
	}
	// Novelty: the same section again is not novel.
	again := prose(rng, 500)
	turn(again)
	if v := turn(again); v.Signals.Novelty > 0.1 {
		t.Errorf("a repeated section has novelty %.2f", v.Signals.Novelty)
	}
}

// TestStreamMemoryBounded checks that history stays bounded in count and in
// sketch size whatever the outputs' length.
func TestStreamMemoryBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	s := NewStream(New(), 3)
	for i := 0; i < 10; i++ {
		s.Classify(&demur.Turn{Response: demur.Response{Output: prose(rng, 20000)}})
	}
	if len(s.hist) != 3 {
		t.Fatalf("history %d, want 3", len(s.hist))
	}
	for _, e := range s.hist {
		if len(e.sketch) > sketchMax {
			t.Fatalf("sketch of %d hashes, bound %d", len(e.sketch), sketchMax)
		}
	}
}
