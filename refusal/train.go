package refusal

import (
	"fmt"
)

// TrainingSet applies the relabel rules, drops unclear and ambiguous rows
// and deduplicates. The result is what Train and CrossValidate take.
func TrainingSet(rows []Row) []Relabelled {
	rel := make([]Relabelled, 0, len(rows))
	for _, r := range rows {
		x := RelabelRow(r)
		if x.Rule == RuleAmbiguous || ClassIndex(x.Label) < 0 {
			continue
		}
		rel = append(rel, x)
	}
	return Dedup(rel)
}

// Examples turns relabelled rows into training examples.
func Examples(rows []Relabelled) []Example {
	ex := make([]Example, len(rows))
	for i, r := range rows {
		ex[i] = Example{Text: r.Response, Refusal: ClassIndex(r.Label) > 0, Group: r.Prompt}
	}
	return ex
}

// CVResult is the out-of-fold prediction for every row.
type CVResult struct {
	Gold, Pred []int
	Prob       []float64
}

// CrossValidate trains k models, each without one fold of prompts, and
// classifies the held-out fold with the full detector (rules and learned
// layer), so the figures are for rows whose prompt the model never saw.
func CrossValidate(rows []Relabelled, k int, seed uint64) (CVResult, error) {
	res := CVResult{Gold: make([]int, len(rows)), Pred: make([]int, len(rows)), Prob: make([]float64, len(rows))}
	ex := Examples(rows)
	for f := 0; f < k; f++ {
		var train []Example
		for _, e := range ex {
			if Fold(e.Group, k) != f {
				train = append(train, e)
			}
		}
		m, err := Train(train, seed)
		if err != nil {
			return res, fmt.Errorf("refusal: fold %d: %w", f, err)
		}
		d := NewWithModel(m)
		for i, r := range rows {
			if Fold(r.Prompt, k) != f {
				continue
			}
			v := d.ClassifyText(r.Response)
			res.Gold[i] = ClassIndex(r.Label)
			res.Pred[i] = KindClass(v.Kind)
			res.Prob[i] = RefusalProb(v)
		}
	}
	return res, nil
}
