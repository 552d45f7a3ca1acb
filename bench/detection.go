package bench

import (
	"errors"
	"fmt"
	"os"

	"github.com/demurhq/demur/refusal"
)

// DetectionReport is the detection track: the detector and the published
// keyword baselines scored on the same labelled rows, per file and over all
// files together, with bootstrap intervals.
type DetectionReport struct {
	Header
	// Bootstrap is the number of resamples behind every interval.
	Bootstrap int `json:"bootstrap"`
	// Sets holds one entry per file, then "all files" when there are
	// several.
	Sets []DetectionSet `json:"sets"`
}

// DetectionSet is every judge's figures on one set of rows.
type DetectionSet struct {
	// Name is the file, or "all files".
	Name string `json:"name"`
	// N counts scored rows (labelled compliance, refusal or partial);
	// Skipped the unclear ones.
	N       int `json:"n"`
	Skipped int `json:"skipped"`
	// Judges lists the detector first ("demur"), then each baseline.
	Judges []JudgeResult `json:"judges"`
}

// JudgeResult is one judge's figures: those of `demur detector eval`
// (refusal.Score), with 95% bootstrap intervals on the headline three.
type JudgeResult struct {
	// Judge is "demur" for the detector or a baseline's name.
	Judge string `json:"judge"`
	// Accuracy and F1 are binary (refusal and partial against the rest).
	Accuracy   float64 `json:"accuracy"`
	AccuracyCI CI      `json:"accuracy_ci"`
	F1         float64 `json:"f1"`
	F1CI       CI      `json:"f1_ci"`
	// MacroF1 is over the three classes.
	MacroF1   float64                       `json:"macro_f1"`
	MacroF1CI CI                            `json:"macro_f1_ci"`
	Classes   map[string]refusal.ClassScore `json:"classes"`
	Confusion [3][3]int                     `json:"confusion"`
	// ECE is the detector's calibration error; baselines give no
	// probability.
	ECE float64 `json:"ece,omitempty"`
}

// DetectionFile is one labelled file's rows.
type DetectionFile struct {
	// Name labels the set in the report (the path).
	Name string
	// Rows are its labelled rows.
	Rows []refusal.Row
}

// ReadDetectionFile reads labelled JSONL (the format of DESIGN.md).
func ReadDetectionFile(path string) (DetectionFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return DetectionFile{}, fmt.Errorf("bench: labelled data: %w", err)
	}
	defer f.Close()
	rows, err := refusal.ReadJSONL(f, path, true)
	if err != nil {
		return DetectionFile{}, fmt.Errorf("bench: labelled data: %w", err)
	}
	return DetectionFile{Name: path, Rows: rows}, nil
}

// judged is one set's gold classes and each judge's predictions.
type judged struct {
	name    string
	skipped int
	gold    []int
	prob    []float64
	preds   [][]int // [judge][row]; judge 0 is the detector
}

// RunDetection scores d and every baseline on each file; bootstrap is the
// resample count (default 1000).
func RunDetection(files []DetectionFile, d *refusal.Detector, bootstrap int, seed int64) (*DetectionReport, error) {
	if len(files) == 0 {
		return nil, errors.New("bench: detection needs at least one labelled file")
	}
	if d == nil {
		d = refusal.New()
	}
	if bootstrap <= 0 {
		bootstrap = 1000
	}
	bases := refusal.Baselines()
	names := []string{"demur"}
	for _, b := range bases {
		names = append(names, b.Name)
	}
	rep := &DetectionReport{Header: Header{Schema: SchemaVersion, Track: TrackDetection, Seed: seed,
		Detector: refusal.Version}, Bootstrap: bootstrap}
	all := judged{name: "all files", preds: make([][]int, len(names))}
	for _, f := range files {
		j := judged{name: f.Name, preds: make([][]int, len(names))}
		for _, r := range f.Rows {
			g := refusal.ClassIndex(r.Label)
			if g < 0 {
				j.skipped++
				continue
			}
			v := d.ClassifyText(r.Response)
			j.gold = append(j.gold, g)
			j.prob = append(j.prob, refusal.RefusalProb(v))
			j.preds[0] = append(j.preds[0], refusal.KindClass(v.Kind))
			for bi, b := range bases {
				p := 0
				if b.Match(r.Response) {
					p = 1
				}
				j.preds[bi+1] = append(j.preds[bi+1], p)
			}
		}
		if len(j.gold) == 0 {
			return nil, fmt.Errorf("bench: %s: no rows labelled compliance, refusal or partial", f.Name)
		}
		rep.Sets = append(rep.Sets, scoreJudged(j, names, bootstrap, uint64(seed)))
		all.skipped += j.skipped
		all.gold = append(all.gold, j.gold...)
		all.prob = append(all.prob, j.prob...)
		for i := range names {
			all.preds[i] = append(all.preds[i], j.preds[i]...)
		}
	}
	if len(files) > 1 {
		rep.Sets = append(rep.Sets, scoreJudged(all, names, bootstrap, uint64(seed)))
	}
	return rep, nil
}

func scoreJudged(j judged, names []string, reps int, seed uint64) DetectionSet {
	set := DetectionSet{Name: j.name, N: len(j.gold), Skipped: j.skipped}
	n := len(j.gold)
	for ji, name := range names {
		pred := j.preds[ji]
		var prob []float64
		if ji == 0 {
			prob = j.prob
		}
		s := refusal.Score(j.gold, pred, prob)
		jr := JudgeResult{Judge: name, Accuracy: s.Accuracy, F1: s.F1, MacroF1: s.MacroF1,
			Classes: s.Classes, Confusion: s.Confusion, ECE: s.ECE}
		// One pass of resamples gives all three intervals; the same seed
		// for every judge pairs their resamples, so judges are compared
		// on the same draws.
		acc, f1, mf := make([]float64, reps), make([]float64, reps), make([]float64, reps)
		b := 0
		g2, p2 := make([]int, n), make([]int, n)
		Bootstrap(n, reps, seed, func(idx []int) float64 {
			for i, k := range idx {
				g2[i], p2[i] = j.gold[k], pred[k]
			}
			bs := refusal.Score(g2, p2, nil)
			acc[b], f1[b], mf[b] = bs.Accuracy, bs.F1, bs.MacroF1
			b++
			return 0
		})
		jr.AccuracyCI, jr.F1CI, jr.MacroF1CI = percentileCI(acc), percentileCI(f1), percentileCI(mf)
		set.Judges = append(set.Judges, jr)
	}
	return set
}
