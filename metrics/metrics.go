// Package metrics serves Prometheus metrics computed from the audit log.
//
// Nothing here counts events as they happen: every scrape reads the counts
// a feed.Feed folded from the log, so /metrics agrees with the log by
// construction (once the feed has caught up), survives a restart of
// `demur serve`, and is the same for `demur serve` and `demur run --ui`.
package metrics

import (
	"net/http"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/demurhq/demur/feed"
	"github.com/demurhq/demur/sla"
)

var (
	turnsDesc = prometheus.NewDesc("demur_turns_total",
		"Backend turns recorded in the audit log.", []string{"task_type", "model"}, nil)
	refusalsDesc = prometheus.NewDesc("demur_refusals_total",
		"Refuse and partial verdicts, by kind, first reason and agent model.", []string{"task_type", "model", "kind", "reason"}, nil)
	decisionsDesc = prometheus.NewDesc("demur_decisions_total",
		"Router decisions, by action.", []string{"task_type", "action"}, nil)
	overridesDesc = prometheus.NewDesc("demur_overrides_applied_total",
		"Overrides the coordinator carried out, by action.", []string{"task_type", "action"}, nil)
	hazardDesc = prometheus.NewDesc("demur_hazard",
		"Early-warning hazard estimates of the verdicts, by agent model.", []string{"task_type", "model"}, nil)
	jobsDesc = prometheus.NewDesc("demur_jobs",
		"Jobs in the log, by status.", []string{"status"}, nil)
	agentsDesc = prometheus.NewDesc("demur_agents",
		"Agents of running jobs, by state.", []string{"state"}, nil)
)

// Collector is a prometheus.Collector over a feed's counts.
type Collector struct{ f *feed.Feed }

// NewCollector returns a collector over f.
func NewCollector(f *feed.Feed) *Collector { return &Collector{f: f} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{turnsDesc, refusalsDesc, decisionsDesc, overridesDesc, hazardDesc, jobsDesc, agentsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Jobs with the same labels are
// summed: a job label would grow without bound, and the log keeps the
// per-job detail.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counters := map[*prometheus.Desc]map[string]float64{turnsDesc: {}, refusalsDesc: {}, decisionsDesc: {}, overridesDesc: {}}
	add := func(d *prometheus.Desc, v float64, labels ...string) { counters[d][strings.Join(labels, "\x00")] += v }
	type hist struct {
		count   uint64
		sum     float64
		buckets []uint64
	}
	hazards := map[string]*hist{}
	jobs, agents := map[string]float64{}, map[string]float64{}
	for _, s := range c.f.Stats() {
		jobs[s.Status]++
		for m, n := range s.Turns {
			add(turnsDesc, float64(n), s.TaskType, m)
		}
		for k, n := range s.Refusals {
			add(refusalsDesc, float64(n), s.TaskType, k.Model, string(k.Kind), string(k.Reason))
		}
		for a, n := range s.Decisions {
			add(decisionsDesc, float64(n), s.TaskType, string(a))
		}
		for a, n := range s.Overrides {
			add(overridesDesc, float64(n), s.TaskType, string(a))
		}
		for m, h := range s.Hazard {
			key := s.TaskType + "\x00" + m
			t := hazards[key]
			if t == nil {
				t = &hist{buckets: make([]uint64, len(feed.HazardBuckets))}
				hazards[key] = t
			}
			t.count += h.Count
			t.sum += h.Sum
			for i, n := range h.Counts {
				t.buckets[i] += n
			}
		}
		if s.Status == feed.StatusRunning {
			for st, n := range s.Agents {
				agents[st] += float64(n)
			}
		}
	}
	for d, vals := range counters {
		for _, k := range sortedKeys(vals) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, vals[k], strings.Split(k, "\x00")...)
		}
	}
	for _, k := range sortedKeys(hazards) {
		h := hazards[k]
		cum, buckets := uint64(0), make(map[float64]uint64, len(feed.HazardBuckets))
		for i, b := range feed.HazardBuckets {
			cum += h.buckets[i]
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(hazardDesc, h.count, h.sum, buckets, strings.Split(k, "\x00")...)
	}
	for _, k := range sortedKeys(jobs) {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, jobs[k], k)
	}
	for _, k := range sortedKeys(agents) {
		ch <- prometheus.MustNewConstMetric(agentsDesc, prometheus.GaugeValue, agents[k], k)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Handler serves /metrics for f, plus any extra collectors (the SLA's burn
// rates). It uses its own registry, so that only demur_ metrics appear.
func Handler(f *feed.Feed, extra ...prometheus.Collector) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(NewCollector(f)); err != nil {
		return nil, err
	}
	for _, c := range extra {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}), nil
}

var (
	burnDesc = prometheus.NewDesc("demur_sla_burn_rate",
		"Error-budget burn rate of an SLA objective over a window (1 spends the budget exactly over the period).",
		[]string{"objective", "sli", "window"}, nil)
	budgetDesc = prometheus.NewDesc("demur_sla_error_budget_remaining",
		"Share of an SLA objective's error budget left over the period (negative once overspent).",
		[]string{"objective", "sli"}, nil)
	firingDesc = prometheus.NewDesc("demur_sla_alerts_firing",
		"Burn-rate rules firing for an SLA objective, by severity.", []string{"objective", "severity"}, nil)
)

// SLACollector exposes the SLA statuses that statuses returns (the last
// check of an sla.Watcher).
type SLACollector struct{ statuses func() []sla.Status }

// NewSLACollector returns a collector over statuses.
func NewSLACollector(statuses func() []sla.Status) *SLACollector {
	return &SLACollector{statuses: statuses}
}

// Describe implements prometheus.Collector.
func (c *SLACollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- burnDesc
	ch <- budgetDesc
	ch <- firingDesc
}

// Collect implements prometheus.Collector.
func (c *SLACollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.statuses() {
		o := s.Objective
		ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, s.BudgetRemaining, o.Name, o.SLI)
		for _, w := range sortedKeys(s.Burn) {
			ch <- prometheus.MustNewConstMetric(burnDesc, prometheus.GaugeValue, s.Burn[w], o.Name, o.SLI, w)
		}
		bySev := map[string]float64{}
		for _, f := range s.Firing {
			bySev[f.Severity]++
		}
		for _, sev := range sortedKeys(bySev) {
			ch <- prometheus.MustNewConstMetric(firingDesc, prometheus.GaugeValue, bySev[sev], o.Name, sev)
		}
	}
}
