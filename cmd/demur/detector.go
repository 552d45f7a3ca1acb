package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur/refusal"
)

func init() { addCommand(newDetectorCmd) }

func newDetectorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "detector",
		Short: "Score the refusal detector against labelled data, or retrain it",
	}
	cmd.AddCommand(newDetectorEvalCmd(), newDetectorTrainCmd())
	return cmd
}

// readLabelled reads every labelled JSONL file; errors name file:line.
func readLabelled(paths []string) ([]refusal.Row, error) {
	if len(paths) == 0 {
		return nil, usageError(errors.New("--data FILE.jsonl is required"))
	}
	var rows []refusal.Row
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, usageError(fmt.Errorf("read labelled data: %w", err))
		}
		rs, err := refusal.ReadJSONL(f, p, true)
		f.Close()
		if err != nil {
			return nil, usageError(err)
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

// judgeScores is the JSON shape of one baseline's figures.
type judgeScores struct {
	Accuracy float64 `json:"accuracy"`
	F1       float64 `json:"f1"`
	MacroF1  float64 `json:"macro_f1"`
}

// evalReport is `detector eval --json`; its field names are the contract.
type evalReport struct {
	N         int                           `json:"n"`
	Accuracy  float64                       `json:"accuracy"`
	F1        float64                       `json:"f1"`
	MacroF1   float64                       `json:"macro_f1"`
	ECE       float64                       `json:"ece"`
	Classes   map[string]refusal.ClassScore `json:"classes"`
	Confusion [3][3]int                     `json:"confusion"`
	MBPerS    float64                       `json:"mb_per_s"`
	Detector  string                        `json:"detector"`
	Baselines map[string]judgeScores        `json:"baselines"`

	baseFull map[string]refusal.Scores
}

// scoreRows classifies every scorable row with d and every baseline.
func scoreRows(d *refusal.Detector, texts []string, gold []int) evalReport {
	pred := make([]int, len(texts))
	prob := make([]float64, len(texts))
	bytes := 0
	start := time.Now()
	for i, t := range texts {
		v := d.ClassifyText(t)
		pred[i] = refusal.KindClass(v.Kind)
		prob[i] = refusal.RefusalProb(v)
		bytes += len(t)
	}
	el := time.Since(start).Seconds()
	return finishReport(refusal.Score(gold, pred, prob), texts, gold, float64(bytes)/1e6/max(el, 1e-9))
}

func finishReport(s refusal.Scores, texts []string, gold []int, mbps float64) evalReport {
	rep := evalReport{N: s.N, Accuracy: s.Accuracy, F1: s.F1, MacroF1: s.MacroF1, ECE: s.ECE,
		Classes: s.Classes, Confusion: s.Confusion, MBPerS: mbps, Detector: refusal.Version,
		Baselines: map[string]judgeScores{}, baseFull: map[string]refusal.Scores{}}
	for _, b := range refusal.Baselines() {
		bp := make([]int, len(texts))
		for i, t := range texts {
			if b.Match(t) {
				bp[i] = 1
			}
		}
		bs := refusal.Score(gold, bp, nil)
		rep.Baselines[b.Name] = judgeScores{bs.Accuracy, bs.F1, bs.MacroF1}
		rep.baseFull[b.Name] = bs
	}
	return rep
}

func writeReport(w io.Writer, rep evalReport, asJSON bool, title string) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(w, "%s: n=%d  detector=%s  speed=%.1f MB/s\n\n", title, rep.N, rep.Detector, rep.MBPerS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "judge\taccuracy\tF1\tmacro-F1\tcompl P/R/F1\trefusal P/R/F1\tpartial P/R/F1\t")
	row := func(name string, s refusal.Scores) {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f", name, s.Accuracy, s.F1, s.MacroF1)
		for _, c := range refusal.Classes {
			cs := s.Classes[c]
			fmt.Fprintf(tw, "\t%.2f/%.2f/%.2f", cs.Precision, cs.Recall, cs.F1)
		}
		fmt.Fprintln(tw, "\t")
	}
	row("demur", refusal.Scores{N: rep.N, Accuracy: rep.Accuracy, F1: rep.F1, MacroF1: rep.MacroF1, Classes: rep.Classes})
	names := make([]string, 0, len(rep.baseFull))
	for n := range rep.baseFull {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		row(n, rep.baseFull[n])
	}
	tw.Flush()
	fmt.Fprintf(w, "\nECE (binary, 10 bins): %.3f\n\nconfusion (rows gold, columns demur):\n", rep.ECE)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tcompliance\trefusal\tpartial\t")
	for g, c := range refusal.Classes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", c, rep.Confusion[g][0], rep.Confusion[g][1], rep.Confusion[g][2])
	}
	return tw.Flush()
}

func newDetectorEvalCmd() *cobra.Command {
	var data []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "eval --data FILE.jsonl [--json]",
		Short: "Score the detector and the published keyword baselines on labelled data",
		Long: "Scores the detector and every keyword baseline on the same rows of labelled JSONL\n" +
			"(fields response and label; unclear rows are skipped): binary accuracy and F1\n" +
			"(refusal+partial against the rest), 3-class macro-F1, per-class precision/recall/F1,\n" +
			"the confusion matrix, ECE and MB/s.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := readLabelled(data)
			if err != nil {
				return err
			}
			texts := make([]string, 0, len(rows))
			gold := make([]int, 0, len(rows))
			for _, r := range rows {
				if g := refusal.ClassIndex(r.Label); g >= 0 {
					texts = append(texts, r.Response)
					gold = append(gold, g)
				}
			}
			if len(texts) == 0 {
				return usageError(errors.New("no rows labelled compliance, refusal or partial"))
			}
			rep := scoreRows(refusal.New(), texts, gold)
			return writeReport(cmd.OutOrStdout(), rep, asJSON, "eval")
		},
	}
	cmd.Flags().StringArrayVar(&data, "data", nil, "labelled JSONL file (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func newDetectorTrainCmd() *cobra.Command {
	var data []string
	var seed uint64
	var out string
	var cv int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "train --data FILE.jsonl... [--seed N] [--out refusal/weights.bin] [--cv K]",
		Short: "Relabel, deduplicate and train the learned layer; optionally cross-validate by prompt",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := readLabelled(data)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			set := refusal.TrainingSet(rows)
			counts := map[string]int{}
			for _, r := range set {
				counts[r.Label]++
			}
			if !asJSON {
				fmt.Fprintf(w, "rows %d → %d after relabel, drop and dedup (compliance %d, refusal %d, partial %d)\n",
					len(rows), len(set), counts[refusal.LabelCompliance], counts[refusal.LabelRefusal], counts[refusal.LabelPartial])
			}
			if cv > 1 {
				res, err := refusal.CrossValidate(set, cv, seed)
				if err != nil {
					return problemError(err)
				}
				texts := make([]string, len(set))
				for i, r := range set {
					texts[i] = r.Response
				}
				rep := finishReport(refusal.Score(res.Gold, res.Pred, res.Prob), texts, res.Gold, 0)
				if err := writeReport(w, rep, asJSON, fmt.Sprintf("%d-fold cross-validation by prompt", cv)); err != nil {
					return err
				}
			}
			if out == "" {
				return nil
			}
			m, err := refusal.Train(refusal.Examples(set), seed)
			if err != nil {
				return problemError(err)
			}
			b, err := m.MarshalBinary()
			if err != nil {
				return problemError(err)
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return problemError(fmt.Errorf("write weights: %w", err))
			}
			if !asJSON {
				fmt.Fprintf(w, "wrote %s (%d bytes); rebuild to embed it, with refusal.Version = %q\n",
					filepath.Clean(out), len(b), refusal.VersionFor(b))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&data, "data", nil, "labelled JSONL file (repeatable)")
	cmd.Flags().Uint64Var(&seed, "seed", refusal.DefaultSeed, "training seed; the same data and seed give the same weights")
	cmd.Flags().StringVar(&out, "out", "", "write the weights here (e.g. refusal/weights.bin); empty: do not write")
	cmd.Flags().IntVar(&cv, "cv", 0, "also report K-fold cross-validation grouped by prompt")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the cross-validation report as one JSON object")
	return cmd
}
