package main

import (
	"context"
	"fmt"
	"html/template"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/coord"
	"github.com/demurhq/demur/feed"
	"github.com/demurhq/demur/internal/svgplot"
	"github.com/demurhq/demur/sla"
)

// maxCurves bounds the agents drawn on the aversion plot; beyond it the
// agents that refused most are shown, since they carry the story.
const maxCurves = 12

// htmlReport is what report.html.tmpl renders.
type htmlReport struct {
	Report    *coord.Report
	Job       feed.Job
	Generated time.Time
	Curves    template.HTML
	Timeline  template.HTML
	Decisions template.HTML
	Actions   []actionCount
	Refusals  []feed.Refusal
	More      int
	SLA       *sla.Report
	SLAFile   string
}

type actionCount struct {
	Action demur.Action
	N      int
}

// writeHTMLReport writes job's report as one self-contained HTML page: the
// study's table, the refusal timeline, the aversion curves, the decisions
// and, with an SLA file, the SLA over the job's span.
func writeHTMLReport(ctx context.Context, url, job, slaFile, path string) error {
	var spec *sla.Spec
	if slaFile != "" {
		s, err := sla.Load(slaFile)
		if err != nil {
			return usageError(err)
		}
		spec = s
	}
	st, err := openNamedStore(ctx, url)
	if err != nil {
		return err
	}
	defer st.Close()
	if job == "" {
		jobs, err := coord.Jobs(ctx, st)
		if err != nil {
			return err
		}
		if len(jobs) != 1 {
			return usageError(fmt.Errorf("store %s holds %d jobs %v: name one", url, len(jobs), jobs))
		}
		job = jobs[0]
	}
	rp, err := coord.BuildReport(ctx, st, job)
	if err != nil {
		return usageError(err)
	}
	// The feed folds the log exactly as the live dashboard does, so that the
	// page and the dashboard never disagree.
	f, err := feed.New(feed.Options{Store: st})
	if err != nil {
		return err
	}
	if err := f.Poll(ctx); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	snap, ok := f.Job(job)
	if !ok {
		return usageError(fmt.Errorf("job %s: no records", job))
	}
	page := htmlReport{Report: rp, Job: snap.Job, Generated: time.Now().UTC().Truncate(time.Second)}

	// The aversion curves: hazard against cumulative tokens, per agent.
	agents := slices.Clone(snap.Agents)
	sort.SliceStable(agents, func(i, j int) bool { return agents[i].Refusals > agents[j].Refusals })
	agents = agents[:min(len(agents), maxCurves)]
	sort.SliceStable(agents, func(i, j int) bool { return agents[i].ID < agents[j].ID })
	var ss []svgplot.Series
	for _, a := range agents {
		pts, _ := f.Series(job, a.ID)
		s := svgplot.Series{Name: a.ID}
		for _, p := range pts {
			s.Points = append(s.Points, svgplot.Point{X: float64(p.Tokens), Y: p.Hazard, Mark: p.Refusal})
		}
		ss = append(ss, s)
	}
	title := "Early-warning hazard against cumulative output tokens (dots: refusals)"
	if len(snap.Agents) > maxCurves {
		title += fmt.Sprintf(" — the %d agents that refused most", maxCurves)
	}
	page.Curves = template.HTML(svgplot.Line(title, "cumulative output tokens", "hazard", ss, 1))

	// The timeline: each refusal by agent and seconds since the job started.
	rows, byAgent := []string{}, map[string]int{}
	for _, a := range snap.Agents {
		byAgent[a.ID] = len(rows)
		rows = append(rows, a.ID)
	}
	pts := make([][]svgplot.Point, len(rows))
	for _, r := range snap.Refusals {
		if i, ok := byAgent[r.Agent]; ok {
			pts[i] = append(pts[i], svgplot.Point{X: r.Time.Sub(snap.Job.Started).Seconds(), Mark: r.Kind == demur.KindRefuse})
		}
	}
	page.Timeline = template.HTML(svgplot.Dots("Refusals over time (orange: partial)", "seconds since the job started", rows, pts))

	for a, n := range snap.Job.Decisions {
		page.Actions = append(page.Actions, actionCount{a, n})
	}
	sort.Slice(page.Actions, func(i, j int) bool { return page.Actions[i].N > page.Actions[j].N })
	labels, values := []string{}, []float64{}
	for _, ac := range page.Actions {
		labels, values = append(labels, string(ac.Action)), append(values, float64(ac.N))
	}
	page.Decisions = template.HTML(svgplot.Bars("Router decisions by action", labels, values))
	page.Refusals = snap.Refusals
	if n := len(page.Refusals); n > 500 {
		page.More, page.Refusals = n-500, page.Refusals[:500]
	}

	if spec != nil {
		end := snap.Job.Ended
		if end.IsZero() {
			end = time.Now()
		}
		recs, err := st.Records(ctx, demur.Query{Stream: job})
		if err != nil {
			return fmt.Errorf("report: read job %s: %w", job, err)
		}
		page.SLA = spec.Report(sla.JobEvents(recs, end), snap.Job.Started, end.Add(time.Nanosecond))
		page.SLAFile = slaFile
	}

	var b strings.Builder
	if err := reportTmpl.Execute(&b, page); err != nil {
		return fmt.Errorf("report: render: %w", err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":  func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) },
	"time": func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
	"join": func(s []string) string { return strings.Join(s, ", ") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>demur report — {{.Report.Job}}</title>
<style>
body{font-family:system-ui,sans-serif;font-size:14px;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.plot .ttl{font-size:13px;font-weight:600}.plot .ax{font-size:10px;fill:#555}.plot .grid{stroke:#eee}
.bad{color:#b00}small{color:#777}
</style></head><body>
<h1>demur report — {{.Report.Job}}</h1>
<p>{{.Report.Status}} · {{.Job.TaskType}} · {{.Report.SectionsDone}} of {{.Report.SectionsTotal}} sections ·
{{.Report.Turns}} turns · {{.Report.Words}} words · refusal rate (agents) {{pct .Report.RefusalRate}} ·
mean abandonment threshold {{printf "%.0f" .Report.MeanAbandonmentTokens}} tokens ·
work lost: {{.Report.Lost.Turns}} turns, {{.Report.Lost.Tokens}} tokens<br>
<small>computed from the audit log at {{.Generated.Format "2006-01-02 15:04:05Z"}}</small></p>
<h2>The study's table</h2>
<table><tr><th class="l">agent</th><th class="l">model</th><th>words</th><th>tokens</th><th>sections</th><th>refused</th><th>refusals</th><th>tokens at refusal</th><th class="l">reason</th><th>retired</th></tr>
{{range .Report.Agents}}<tr><td class="l">{{.ID}}</td><td class="l">{{.Model}}</td><td>{{.Words}}</td><td>{{.Tokens}}</td><td>{{.Sections}}</td>
<td>{{if .Refused}}yes{{else}}no{{end}}</td><td>{{.Refusals}}</td><td>{{if .Refused}}{{.TokensAtRefusal}}{{else}}-{{end}}</td><td class="l">{{if .Refused}}{{.Reason}}{{else}}-{{end}}</td><td>{{if .Retired}}yes{{else}}no{{end}}</td></tr>
{{end}}</table>
{{if .Report.Missing}}<p class="bad">missing sections: {{join .Report.Missing}}</p>{{end}}
<h2>Aversion signal</h2>
{{.Curves}}
<h2>Refusal timeline</h2>
{{.Timeline}}
<table><tr><th class="l">time (UTC)</th><th class="l">agent</th><th class="l">model</th><th class="l">task</th><th>attempt</th><th class="l">kind</th><th class="l">reasons</th><th class="l">source</th><th class="l">decision</th></tr>
{{range .Refusals}}<tr><td class="l">{{time .Time}}</td><td class="l">{{.Agent}}</td><td class="l">{{.Model}}</td><td class="l">{{.Task}}</td><td>{{.Attempt}}</td><td class="l">{{.Kind}}</td><td class="l">{{join .Reasons}}</td><td class="l">{{.Source}}</td><td class="l">{{.Action}}</td></tr>
{{else}}<tr><td class="l" colspan="9">no refusals</td></tr>{{end}}</table>
{{if .More}}<p><small>… and {{.More}} more (demur audit explain lists them all)</small></p>{{end}}
<h2>Decisions</h2>
{{.Decisions}}
<table><tr><th class="l">action</th><th>count</th></tr>{{range .Actions}}<tr><td class="l">{{.Action}}</td><td>{{.N}}</td></tr>{{end}}</table>
<p>overrides applied: {{.Job.Overrides}}</p>
<h2>SLA</h2>
{{with .SLA}}<p><small>{{$.SLAFile}}, over the job's span</small></p>
<table><tr><th class="l">objective</th><th class="l">sli</th><th>bad / total</th><th>max</th><th>windows met</th><th>compliance</th><th>budget used</th><th>credit</th></tr>
{{range .Objectives}}<tr><td class="l">{{.Objective.Name}}</td><td class="l">{{.Objective.SLI}}</td><td>{{.Bad}} / {{.Total}}</td><td>{{pct .Objective.Max}}</td><td>{{.Met}} / {{.Windows}}</td>
<td{{if lt .Compliance 1.0}} class="bad"{{end}}>{{pct .Compliance}}</td><td>{{pct .BudgetUsed}}</td><td>{{printf "%.0f" .Credit}}%</td></tr>{{end}}</table>
<p>credit: {{printf "%.0f" .Credit}}%</p>
{{else}}<p><small>no SLA file given (demur report --sla FILE)</small></p>{{end}}
</body></html>
`))
