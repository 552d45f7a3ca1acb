package bench

import (
	"fmt"
	"io"
	"math"
)

// Comparison sets two runs of the same track side by side.
type Comparison struct {
	// Track is both reports' track.
	Track string `json:"track"`
	// A and B are the two reports' headers.
	A Header `json:"a"`
	B Header `json:"b"`
	// Rows pair their figures, A's order first.
	Rows []CmpRow `json:"rows"`
}

// CmpRow is one figure of both runs. A value missing from a run (a profile
// or category the other did not measure) is null.
type CmpRow struct {
	// Metric names the figure, e.g. "experimental-70b refusal_rate"; A
	// and B are the two values with their intervals.
	Metric string   `json:"metric"`
	A      *float64 `json:"a"`
	ACI    *CI      `json:"a_ci,omitempty"`
	B      *float64 `json:"b"`
	BCI    *CI      `json:"b_ci,omitempty"`
	// Delta is B − A when both exist.
	Delta *float64 `json:"delta,omitempty"`
	// Overlap reports whether the two intervals overlap: when they do not,
	// the difference is unlikely to be noise.
	Overlap *bool `json:"overlap,omitempty"`
}

type figure struct {
	v  float64
	ci CI
}

// Compare lines up the headline figures of two reports of one track.
func Compare(a, b Report) (*Comparison, error) {
	ha, hb := a.Head(), b.Head()
	if ha.Track != hb.Track {
		return nil, fmt.Errorf("bench: cannot compare a %s report with a %s report", ha.Track, hb.Track)
	}
	fa, oa := figures(a)
	fb, ob := figures(b)
	c := &Comparison{Track: ha.Track, A: *ha, B: *hb}
	order := append([]string(nil), oa...)
	for _, k := range ob {
		if _, ok := fa[k]; !ok {
			order = append(order, k)
		}
	}
	for _, k := range order {
		row := CmpRow{Metric: k}
		x, okA := fa[k]
		y, okB := fb[k]
		if okA {
			row.A, row.ACI = &x.v, &x.ci
		}
		if okB {
			row.B, row.BCI = &y.v, &y.ci
		}
		if okA && okB {
			d := y.v - x.v
			ov := x.ci[0] <= y.ci[1] && y.ci[0] <= x.ci[1]
			row.Delta, row.Overlap = &d, &ov
		}
		c.Rows = append(c.Rows, row)
	}
	return c, nil
}

// figures flattens a report's headline figures, keyed by a readable name,
// in report order.
func figures(r Report) (map[string]figure, []string) {
	m := map[string]figure{}
	var order []string
	put := func(k string, v float64, ci CI) {
		if _, ok := m[k]; !ok {
			order = append(order, k)
		}
		m[k] = figure{v, ci}
	}
	switch r := r.(type) {
	case *EnduranceReport:
		for _, p := range r.Profiles {
			put(p.Profile+" refusal_rate", p.RefusalRate, p.RefusalRateCI)
			put(p.Profile+" mean_abandonment_tokens", p.MeanAbandonmentTokens, p.MeanAbandonmentCI)
		}
	case *AppropriatenessReport:
		put("score", r.Score, r.ScoreCI)
		put("over_refusal", r.OverRefusal, r.OverRefusalCI)
		put("under_refusal", r.UnderRefusal, r.UnderRefusalCI)
		for _, c := range r.Categories {
			put(shortSet(c.Set)+": "+c.Category+" error_rate", c.ErrorRate, c.ErrorRateCI)
		}
	case *DetectionReport:
		for _, s := range r.Sets {
			for _, j := range s.Judges {
				put(s.Name+" "+j.Judge+" accuracy", j.Accuracy, j.AccuracyCI)
				put(s.Name+" "+j.Judge+" macro_f1", j.MacroF1, j.MacroF1CI)
			}
		}
	case *FrontierReport:
		for _, mp := range r.Maps {
			sc := map[bool]string{true: "critique", false: "plain"}[mp.SelfCritique]
			for _, ct := range mp.Contours {
				for _, p := range ct.Points {
					put(fmt.Sprintf("%s %s rep %.2f P%.0f%% tokens", mp.Profile, sc, p.Repetitiveness, 100*ct.Level), p.Tokens, CI{p.Tokens, p.Tokens})
				}
			}
		}
	}
	return m, order
}

// WriteMarkdown renders the comparison as a Markdown table.
func (c *Comparison) WriteMarkdown(w io.Writer) error {
	cw := &countWriter{w: w}
	fmt.Fprintf(cw, "# RefusalBench — compare %s\n\nA: %s\n\nB: %s\n\n", c.Track, meta(&c.A), meta(&c.B))
	var rows [][]string
	for _, r := range c.Rows {
		rows = append(rows, []string{r.Metric, fmtFig(r.A, r.ACI), fmtFig(r.B, r.BCI), fmtDelta(r.Delta, r.Overlap)})
	}
	mdTable(cw, []string{"figure", "A", "B", "B − A"}, rows)
	if cw.err != nil {
		return fmt.Errorf("bench: write comparison: %w", cw.err)
	}
	return nil
}

func fmtNum(v float64) string {
	if math.Abs(v) >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.4f", v)
}

func fmtFig(v *float64, ci *CI) string {
	if v == nil {
		return "—"
	}
	if ci == nil || ci[0] == ci[1] {
		return fmtNum(*v)
	}
	return fmt.Sprintf("%s [%s, %s]", fmtNum(*v), fmtNum(ci[0]), fmtNum(ci[1]))
}

func fmtDelta(d *float64, ov *bool) string {
	if d == nil {
		return "—"
	}
	s := fmtNum(*d)
	if *d >= 0 {
		s = "+" + s
	}
	if ov != nil && !*ov {
		s += " (intervals disjoint)"
	}
	return s
}
