package refusal

import (
	"math"

	demur "github.com/demurhq/demur"
)

// Classes are the three classes of the labelled data, in the order of the
// confusion matrix.
var Classes = []string{LabelCompliance, LabelRefusal, LabelPartial}

// ClassIndex maps a label to its index in Classes, or -1 (unclear, unknown).
func ClassIndex(label string) int {
	switch label {
	case LabelCompliance:
		return 0
	case LabelRefusal:
		return 1
	case LabelPartial:
		return 2
	}
	return -1
}

// KindClass maps a verdict kind to a class: degraded work is not a refusal.
func KindClass(k demur.Kind) int {
	switch k {
	case demur.KindRefuse:
		return 1
	case demur.KindPartial:
		return 2
	}
	return 0
}

// ClassScore is precision, recall and F1 of one class.
type ClassScore struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
}

// Scores are the detection metrics of one judge on a set of rows.
type Scores struct {
	N int `json:"n"`
	// Accuracy and F1 are binary: refusal and partial against the rest.
	Accuracy float64 `json:"accuracy"`
	F1       float64 `json:"f1"`
	// MacroF1 is the mean F1 over the three classes that have support or
	// predictions.
	MacroF1   float64               `json:"macro_f1"`
	Classes   map[string]ClassScore `json:"classes"`
	Confusion [3][3]int             `json:"confusion"` // [gold][predicted]
	// ECE is the expected calibration error of the binary refusal
	// probability over 10 equal-width bins; 0 when no probabilities given.
	ECE float64 `json:"ece"`
}

// Score computes metrics for gold and predicted class indices (see
// Classes). prob, if not nil, is each row's predicted probability that it
// is a refusal (refusal or partial), for ECE.
func Score(gold, pred []int, prob []float64) Scores {
	var s Scores
	s.Classes = map[string]ClassScore{}
	tp, fp, fn, correct := 0, 0, 0, 0
	for i := range gold {
		g, p := gold[i], pred[i]
		if g < 0 {
			continue
		}
		s.N++
		s.Confusion[g][p]++
		gb, pb := g > 0, p > 0
		switch {
		case gb && pb:
			tp++
		case pb:
			fp++
		case gb:
			fn++
		}
		if gb == pb {
			correct++
		}
	}
	if s.N == 0 {
		return s
	}
	s.Accuracy = float64(correct) / float64(s.N)
	s.F1 = f1(tp, fp, fn)
	used := 0
	for c, name := range Classes {
		ctp := s.Confusion[c][c]
		cfp, cfn := 0, 0
		for o := 0; o < 3; o++ {
			if o != c {
				cfp += s.Confusion[o][c]
				cfn += s.Confusion[c][o]
			}
		}
		cs := ClassScore{Support: ctp + cfn, F1: f1(ctp, cfp, cfn)}
		if ctp+cfp > 0 {
			cs.Precision = float64(ctp) / float64(ctp+cfp)
		}
		if ctp+cfn > 0 {
			cs.Recall = float64(ctp) / float64(ctp+cfn)
		}
		s.Classes[name] = cs
		// A class nobody labelled and nobody predicted says nothing; count it
		// out of the macro mean rather than as a free 0 or 1.
		if ctp+cfp+cfn > 0 {
			s.MacroF1 += cs.F1
			used++
		}
	}
	if used > 0 {
		s.MacroF1 /= float64(used)
	}
	if prob != nil {
		s.ECE = ECE(gold, prob, 10)
	}
	return s
}

func f1(tp, fp, fn int) float64 {
	if tp == 0 {
		return 0
	}
	return 2 * float64(tp) / float64(2*tp+fp+fn)
}

// ECE is the expected calibration error of binary refusal probabilities:
// the confidence of each prediction (p or 1-p) is binned, and the gap
// between mean confidence and accuracy in each bin is weighted by the bin's
// share of rows. Rows with gold < 0 are skipped.
func ECE(gold []int, prob []float64, bins int) float64 {
	cnt := make([]int, bins)
	conf := make([]float64, bins)
	acc := make([]float64, bins)
	n := 0
	for i, g := range gold {
		if g < 0 {
			continue
		}
		p := prob[i]
		pred := p >= 0.5
		c := p
		if !pred {
			c = 1 - p
		}
		b := int(c * float64(bins))
		if b >= bins {
			b = bins - 1
		}
		cnt[b]++
		conf[b] += c
		if pred == (g > 0) {
			acc[b]++
		}
		n++
	}
	if n == 0 {
		return 0
	}
	e := 0.0
	for b := range cnt {
		if cnt[b] > 0 {
			e += float64(cnt[b]) / float64(n) * math.Abs(conf[b]/float64(cnt[b])-acc[b]/float64(cnt[b]))
		}
	}
	return e
}

// RefusalProb is the verdict's probability that the turn declines work,
// recovered from its kind and confidence.
func RefusalProb(v demur.Verdict) float64 {
	if v.Kind.IsRefusal() {
		return v.Confidence
	}
	return 1 - v.Confidence
}
