package bench

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/demurhq/demur/sim"
)

// FrontierReport is the refusal frontier: the probability that an agent has
// refused by a given task length, over a grid of task length ×
// repetitiveness, with self-critique off and on, and the contours where it
// crosses 10%, 50% and 90%.
type FrontierReport struct {
	Header
	// Lengths are the grid's task lengths in output tokens (columns).
	Lengths []int64 `json:"lengths"`
	// Repetitiveness are the grid's rows, 0 (every section new) to 1
	// (every section the same).
	Repetitiveness []float64 `json:"repetitiveness"`
	// Levels are the contour levels.
	Levels []float64 `json:"levels"`
	// Maps holds one heat map per profile (or model) and self-critique
	// setting.
	Maps []FrontierMap `json:"maps"`
}

// FrontierMap is one heat map.
type FrontierMap struct {
	// Profile names the simulator profile or the HTTP model.
	Profile string `json:"profile"`
	// SelfCritique is whether every section asked for a self-critique.
	SelfCritique bool `json:"self_critique"`
	// Agents is how many agents each row ran.
	Agents int `json:"agents"`
	// P[i][j] is the share of agents that refused by Lengths[j] at
	// Repetitiveness[i].
	P [][]float64 `json:"p"`
	// Contours gives, per level, the length at which each row crosses it.
	Contours []Contour `json:"contours"`
	// MaxP is the highest probability on the map: a profile whose agents
	// are mostly immune never reaches the upper levels.
	MaxP float64 `json:"max_p"`
}

// Contour is where one row after another crosses Level.
type Contour struct {
	Level  float64        `json:"level"`
	Points []ContourPoint `json:"points"`
}

// ContourPoint is one row's crossing: Tokens is the task length at which
// P reaches the level, interpolated on log length between grid columns;
// rows that never reach it within the grid have no point.
type ContourPoint struct {
	Repetitiveness float64 `json:"repetitiveness"`
	Tokens         float64 `json:"tokens"`
}

// DefaultLevels are the contour levels of the frontier.
var DefaultLevels = []float64{0.1, 0.5, 0.9}

// DefaultLengths returns the default length grid: 15 lengths spaced by √2
// from 25k to 3.2M tokens.
func DefaultLengths() []int64 {
	var ls []int64
	for l := 25_000.0; l <= 3_200_001; l *= math.Sqrt2 {
		ls = append(ls, int64(math.Round(l/1000)*1000))
	}
	return ls
}

// DefaultRepetitiveness returns the default rows: 0, 0.1, …, 1.
func DefaultRepetitiveness() []float64 {
	rs := make([]float64, 11)
	for i := range rs {
		rs[i] = float64(i) / 10
	}
	return rs
}

// Features maps a repetitiveness r in [0,1] onto the simulator's features
// along a line through its reference task: repetition r, novelty falling
// as repetition rises (1 − 0.63r, so r = 0.84 is exactly sim.RefFeatures),
// the reference task's ambiguity.
func Features(r float64, selfCritique bool) sim.Features {
	nov := 1 - r*(1-sim.RefFeatures.Novelty)/sim.RefFeatures.Repetition
	return sim.Features{Repetition: r, Novelty: math.Max(0, nov), Ambiguity: sim.RefFeatures.Ambiguity,
		SelfCritique: selfCritique}
}

// SimFrontier computes one profile's map by Monte Carlo over agents of
// profile p: each agent is run once per row to the longest length, and P
// at each length is the share abandoned by it.
func SimFrontier(p sim.Profile, agents int, seed int64, lengths []int64, reps []float64, levels []float64, selfCritique bool) FrontierMap {
	m := FrontierMap{Profile: p.Name, SelfCritique: selfCritique, Agents: agents}
	horizon := lengths[len(lengths)-1]
	for _, r := range reps {
		at := simAbandonments(p, agents, horizon, seed, Features(r, selfCritique))
		m.P = append(m.P, byLength(at, lengths))
	}
	m.finish(lengths, reps, levels)
	return m
}

// DriveFrontier computes a map from real agents: for each row c.Agents
// agents run with that repetitiveness up to the longest length.
func DriveFrontier(ctx context.Context, name string, c DriveConfig, lengths []int64, reps []float64, levels []float64) (FrontierMap, error) {
	m := FrontierMap{Profile: name, SelfCritique: c.SelfCritique, Agents: c.Agents}
	c.Tokens = lengths[len(lengths)-1]
	for _, r := range reps {
		c.Repetitiveness = r
		runs, err := Drive(ctx, c)
		if err != nil {
			return m, fmt.Errorf("bench: frontier row %.2f: %w", r, err)
		}
		var at []int64
		for _, run := range runs {
			if run.Err == "" {
				at = append(at, run.AbandonedAt)
			}
		}
		m.P = append(m.P, byLength(at, lengths))
	}
	m.finish(lengths, reps, levels)
	return m, nil
}

// PlanFrontier is the cost of DriveFrontier.
func PlanFrontier(c DriveConfig, lengths []int64, reps []float64) Plan {
	c.Tokens = lengths[len(lengths)-1]
	var p Plan
	for range reps {
		p = p.Add(PlanDrive(c))
	}
	return p
}

// NoteCeilings adds a note for every map on which some level is never
// reached: with the simulator that is the profile's immune share (agents
// that never abandon) capping P, not a grid too short.
func (r *FrontierReport) NoteCeilings() {
	for _, m := range r.Maps {
		var missing []string
		for _, c := range m.Contours {
			if len(c.Points) == 0 {
				missing = append(missing, fmt.Sprintf("%.0f%%", 100*c.Level))
			}
		}
		if len(missing) > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: P(refused) never reaches %s on this grid (max %.2f%%).",
				mapTitle(m), strings.Join(missing, ", "), 100*m.MaxP))
		}
	}
}

func byLength(at []int64, lengths []int64) []float64 {
	row := make([]float64, len(lengths))
	if len(at) == 0 {
		return row
	}
	for j, l := range lengths {
		k := 0
		for _, a := range at {
			if a >= 0 && a <= l {
				k++
			}
		}
		row[j] = float64(k) / float64(len(at))
	}
	return row
}

func (m *FrontierMap) finish(lengths []int64, reps []float64, levels []float64) {
	for _, row := range m.P {
		for _, v := range row {
			m.MaxP = math.Max(m.MaxP, v)
		}
	}
	for _, lv := range levels {
		c := Contour{Level: lv, Points: []ContourPoint{}}
		for i, row := range m.P {
			if t, ok := crossing(row, lengths, lv); ok {
				c.Points = append(c.Points, ContourPoint{Repetitiveness: reps[i], Tokens: t})
			}
		}
		m.Contours = append(m.Contours, c)
	}
}

// crossing finds where a non-decreasing row first reaches level,
// interpolating on log length; a row already at the level in the first
// column crosses at the first length (the grid cannot say earlier).
func crossing(row []float64, lengths []int64, level float64) (float64, bool) {
	for j, v := range row {
		if v < level {
			continue
		}
		if j == 0 {
			return float64(lengths[0]), true
		}
		p0, p1 := row[j-1], v
		l0, l1 := math.Log(float64(lengths[j-1])), math.Log(float64(lengths[j]))
		f := (level - p0) / (p1 - p0)
		return math.Round(math.Exp(l0 + f*(l1-l0))), true
	}
	return 0, false
}
