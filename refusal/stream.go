package refusal

import (
	"slices"

	demur "github.com/demurhq/demur"
)

// sketchMax bounds the n-gram hashes remembered per output: novelty is
// estimated on a 1-in-sketchMod sample of word 4-grams, at most sketchMax
// of them, so a Stream's memory is O(memory × sketchMax) whatever the
// outputs' length.
const (
	sketchMax = 1024
	sketchMod = 4
)

// Stream is one agent's history for degraded-work detection. It is not safe
// for concurrent use: one goroutine owns it.
type Stream struct {
	d      *Detector
	memory int
	hist   []entry // ring of the last memory outputs
	next   int
	cum    int64
	buf    []int // scratch for the median
}

type entry struct {
	words  int
	sketch []uint32 // sorted sample of word 4-gram hashes
}

// NewStream returns a stream remembering up to memory previous outputs
// (at least 1).
func NewStream(d *Detector, memory int) *Stream {
	if memory < 1 {
		memory = 1
	}
	return &Stream{d: d, memory: memory}
}

// Degraded thresholds against the agent's own history.
const (
	lenCollapse  = 0.4 // output shorter than this share of the recent median
	noveltyLow   = 0.3 // share of new 4-grams below which the agent repeats itself across turns
	minHistory   = 3   // turns needed before length and novelty mean anything
	lenMinMedian = 150 // length collapse only counts for long-form work
)

// Classify classifies t against this agent's history and fills Signals:
// repetition and meta-commentary from the output, novelty against the
// remembered outputs, length against their median.
func (s *Stream) Classify(t *demur.Turn) demur.Verdict {
	v := s.d.Classify(t)
	sketch, words := sketchOf(t.Output)
	sig := &v.Signals
	sig.Novelty = 1
	if len(s.hist) > 0 && len(sketch) > 0 {
		seen := 0
		for _, h := range sketch {
			for _, e := range s.hist {
				if _, ok := slices.BinarySearch(e.sketch, h); ok {
					seen++
					break
				}
			}
		}
		sig.Novelty = 1 - float64(seen)/float64(len(sketch))
	}
	med := s.median()
	if med > 0 {
		sig.LengthRatio = float64(words) / float64(med)
	}
	s.cum += int64(t.Usage.CompletionTokens)
	sig.CumTokens = s.cum

	if v.Kind == demur.KindComply && v.Source == demur.SourceText && t.Output != "" {
		weak := 0
		var why []demur.Evidence
		if sig.Repetition >= repWeak {
			weak++
			why = append(why, demur.Evidence{Rule: "signal:repetition", Reason: demur.ReasonQuality, Weight: sig.Repetition})
		}
		if sig.MetaRatio >= metaWeak {
			weak++
			why = append(why, demur.Evidence{Rule: "signal:meta_commentary", Reason: demur.ReasonQuality, Weight: sig.MetaRatio})
		}
		if len(s.hist) >= minHistory {
			if med >= lenMinMedian && sig.LengthRatio < lenCollapse {
				weak++
				why = append(why, demur.Evidence{Rule: "signal:length_collapse", Reason: demur.ReasonQuality, Weight: sig.LengthRatio})
			}
			if len(sketch) >= 16 && sig.Novelty < noveltyLow {
				weak++
				why = append(why, demur.Evidence{Rule: "signal:low_novelty", Reason: demur.ReasonQuality, Weight: sig.Novelty})
			}
		}
		if weak >= 2 {
			v.Kind = demur.KindDegraded
			v.Source = demur.SourceSignal
			v.Confidence = min(0.55+0.15*float64(weak), 0.95)
			v.Evidence = why
			v.Reasons = []demur.Reason{demur.ReasonQuality}
		}
	}
	s.remember(entry{words: words, sketch: sketch})
	return v
}

func (s *Stream) remember(e entry) {
	if len(s.hist) < s.memory {
		s.hist = append(s.hist, e)
		return
	}
	s.hist[s.next] = e
	s.next = (s.next + 1) % s.memory
}

func (s *Stream) median() int {
	if len(s.hist) == 0 {
		return 0
	}
	s.buf = s.buf[:0]
	for _, e := range s.hist {
		s.buf = append(s.buf, e.words)
	}
	slices.Sort(s.buf)
	return s.buf[len(s.buf)/2]
}

// sketchOf returns a sorted, deduplicated sample of the text's word 4-gram
// hashes and its word count. Words are ASCII-lowercased bytes.
func sketchOf(text string) ([]uint32, int) {
	var w [4]uint32
	var out []uint32
	nw := 0
	h := uint32(2166136261)
	in := false
	limit := min(len(text), headCap+tailCap)
	for i := 0; i <= limit; i++ {
		if i < limit {
			c := text[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if isWord(c) {
				h = (h ^ uint32(c)) * 16777619
				in = true
				continue
			}
		}
		if !in {
			continue
		}
		in = false
		w[0], w[1], w[2], w[3] = w[1], w[2], w[3], h
		h = 2166136261
		nw++
		if nw < 4 {
			continue
		}
		g := w[0]*0x9E3779B1 ^ w[1]*0x85EBCA77 ^ w[2]*0xC2B2AE3D ^ w[3]*0x27D4EB2F
		if g%sketchMod == 0 && len(out) < sketchMax {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nw
}
