package sla

import (
	"math"
	"time"
)

// judge says whether e counts for o and whether it is bad.
func (o *Objective) judge(e *Event) (counts, bad bool) {
	if e.SLI != o.SLI || (o.TaskType != "" && e.TaskType != o.TaskType) || (o.Model != "" && e.Model != o.Model) {
		return false, false
	}
	if o.SLI != RecoveryTime {
		return true, e.Bad
	}
	late := !e.Recovered || e.Latency > o.within
	if e.Open && e.Latency <= o.within {
		return false, false // still within its bound: not judged yet
	}
	return true, late
}

// count returns o's bad and total events with from < Time ≤ to.
func (o *Objective) count(events []Event, from, to time.Time) (bad, total int) {
	for i := range events {
		e := &events[i]
		if !e.Time.After(from) || e.Time.After(to) {
			continue
		}
		if c, b := o.judge(e); c {
			total++
			if b {
				bad++
			}
		}
	}
	return bad, total
}

// BurnRate is the rate at which o spends its error budget over the window
// ending at now: the bad share over Max. 1 spends the budget exactly over
// the period; 0 when the window has no events.
func (o *Objective) BurnRate(events []Event, now time.Time, window time.Duration) float64 {
	bad, total := o.count(events, now.Add(-window), now)
	if total == 0 {
		return 0
	}
	return float64(bad) / float64(total) / o.Max
}

// Firing is a burn-rate rule that fires for an objective.
type Firing struct {
	Objective string  `json:"objective"`
	Severity  string  `json:"severity"`
	Long      string  `json:"long"`
	Short     string  `json:"short"`
	Threshold float64 `json:"threshold"`
	LongBurn  float64 `json:"long_burn"`
	ShortBurn float64 `json:"short_burn"`
}

// Status is an objective's state at a moment.
type Status struct {
	Objective Objective `json:"objective"`
	// Bad and Total count the events over the period ending at the moment.
	Bad   int     `json:"bad"`
	Total int     `json:"total"`
	Rate  float64 `json:"rate"`
	// BudgetRemaining is the share of the period's error budget left
	// (negative once overspent).
	BudgetRemaining float64 `json:"budget_remaining"`
	// Burn is the burn rate over each rule's long and short windows.
	Burn   map[string]float64 `json:"burn"`
	Firing []Firing           `json:"firing,omitempty"`
}

// Evaluate computes every objective's status at now.
func (s *Spec) Evaluate(events []Event, now time.Time) []Status {
	out := make([]Status, 0, len(s.Objectives))
	for i := range s.Objectives {
		o := &s.Objectives[i]
		st := Status{Objective: *o, Burn: map[string]float64{}, BudgetRemaining: 1}
		st.Bad, st.Total = o.count(events, now.Add(-s.period), now)
		if st.Total > 0 {
			st.Rate = float64(st.Bad) / float64(st.Total)
			st.BudgetRemaining = 1 - st.Rate/o.Max
		}
		for _, r := range s.Alerts.Rules {
			lb := o.BurnRate(events, now, r.long)
			sb := o.BurnRate(events, now, r.short)
			st.Burn[r.Long], st.Burn[r.Short] = lb, sb
			if lb >= r.Burn && sb >= r.Burn {
				st.Firing = append(st.Firing, Firing{Objective: o.Name, Severity: r.Severity, Long: r.Long, Short: r.Short,
					Threshold: r.Burn, LongBurn: lb, ShortBurn: sb})
			}
		}
		out = append(out, st)
	}
	return out
}

// Compliance is an objective's record over a reporting period.
type Compliance struct {
	Objective Objective `json:"objective"`
	// Windows counts the compliance windows that had events; Met those
	// whose bad share stayed at or under Max.
	Windows int `json:"windows"`
	Met     int `json:"met"`
	// Compliance is Met/Windows, 1 when no window had events.
	Compliance float64 `json:"compliance"`
	Bad        int     `json:"bad"`
	Total      int     `json:"total"`
	// BudgetUsed is the share of the period's error budget spent.
	BudgetUsed float64 `json:"budget_used"`
	// Credit is the contract credit the compliance earns, in percent.
	Credit float64 `json:"credit_percent"`
}

// Report is `demur sla report`: compliance and credits over [From, To).
type Report struct {
	From       time.Time    `json:"from"`
	To         time.Time    `json:"to"`
	Objectives []Compliance `json:"objectives"`
	// Credit is the largest credit any objective earns: a contract pays
	// one credit per period, for its worst breach.
	Credit float64 `json:"credit_percent"`
}

// Report computes compliance and credits for the period [from, to).
func (s *Spec) Report(events []Event, from, to time.Time) *Report {
	rp := &Report{From: from, To: to}
	for i := range s.Objectives {
		o := &s.Objectives[i]
		c := Compliance{Objective: *o, Compliance: 1}
		c.Bad, c.Total = o.count(events, from.Add(-time.Nanosecond), to.Add(-time.Nanosecond))
		if c.Total > 0 {
			c.BudgetUsed = float64(c.Bad) / float64(c.Total) / o.Max
		}
		for w := from; w.Before(to); w = w.Add(o.window) {
			end := w.Add(o.window)
			if end.After(to) {
				end = to
			}
			bad, total := o.count(events, w.Add(-time.Nanosecond), end.Add(-time.Nanosecond))
			if total == 0 {
				continue
			}
			c.Windows++
			if float64(bad)/float64(total) <= o.Max {
				c.Met++
			}
		}
		if c.Windows > 0 {
			c.Compliance = float64(c.Met) / float64(c.Windows)
		}
		for _, cr := range s.Credits {
			if c.Compliance < cr.Below {
				c.Credit = math.Max(c.Credit, cr.Percent)
			}
		}
		rp.Credit = math.Max(rp.Credit, c.Credit)
		rp.Objectives = append(rp.Objectives, c)
	}
	return rp
}
