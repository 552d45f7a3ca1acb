package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur/coord"
)

func init() { addCommand(newReportCmd) }

type reportOptions struct {
	store, job               string
	againstStore, againstJob string
	json                     bool
	// html, when set, is a file for the self-contained HTML page of the
	// (first) job; sla adds the SLA to it.
	html, sla string
}

func newReportCmd() *cobra.Command {
	var o reportOptions
	cmd := &cobra.Command{
		Use:   "report [JOB]",
		Short: "Print a job's report from its log, or two jobs side by side",
		Long: `Print a job's report, computed from the audit log alone: the study's table
(per agent: words, tokens, refused, tokens at refusal, reason), sections
written and missing, and the work lost to refusals and redos.

With --against, a second job (another store, or the same one) is shown
beside it, e.g. the seed experiment under the default policy against
--policy none:

  demur report --store sqlite://out/managed/demur.db --against sqlite://out/none/demur.db

With --html FILE, the job's report is also written as one self-contained
HTML page (charts as inline SVG, no script, no network): the study's table,
the refusal timeline, the aversion curves, the decisions, and with
--sla FILE the SLA's compliance over the job's span.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if o.job != "" && o.job != args[0] {
					return usageError(fmt.Errorf("job %s given twice, as %s and --job %s", args[0], args[0], o.job))
				}
				o.job = args[0]
			}
			return runReport(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "", "store URL (default $"+storeEnv+")")
	f.StringVar(&o.job, "job", "", "job ID (default the store's only job)")
	f.StringVar(&o.againstStore, "against", "", "store URL of a second job to show beside the first")
	f.StringVar(&o.againstJob, "against-job", "", "job ID in the --against store (default its only job)")
	f.BoolVar(&o.json, "json", false, "print one JSON object")
	f.StringVar(&o.html, "html", "", "also write the job's report as a self-contained HTML page to this file")
	f.StringVar(&o.sla, "sla", "", "SLA file to report on in the HTML page")
	return cmd
}

// loadReport opens url and builds the report of job, or of the store's
// only job when job is empty.
func loadReport(ctx context.Context, url, job string) (*coord.Report, error) {
	st, err := openNamedStore(ctx, url)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if job == "" {
		jobs, err := coord.Jobs(ctx, st)
		if err != nil {
			return nil, err
		}
		if len(jobs) != 1 {
			return nil, usageError(fmt.Errorf("store %s holds %d jobs %v: pass --job", url, len(jobs), jobs))
		}
		job = jobs[0]
	}
	rp, err := coord.BuildReport(ctx, st, job)
	if err != nil {
		return nil, usageError(err)
	}
	return rp, nil
}

func runReport(ctx context.Context, o reportOptions, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	a, err := loadReport(ctx, o.store, o.job)
	if err != nil {
		return err
	}
	reports := []*coord.Report{a}
	if o.againstStore != "" || o.againstJob != "" {
		url := o.againstStore
		if url == "" {
			url = o.store
		}
		b, err := loadReport(ctx, url, o.againstJob)
		if err != nil {
			return err
		}
		reports = append(reports, b)
	}
	if o.html != "" {
		if err := writeHTMLReport(ctx, o.store, a.Job, o.sla, o.html); err != nil {
			return err
		}
	} else if o.sla != "" {
		return usageError(fmt.Errorf("--sla goes with --html (for the text report, see demur sla report)"))
	}
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"reports": reports})
	}
	for _, rp := range reports {
		printReport(w, rp)
	}
	if len(reports) == 2 {
		printSideBySide(w, reports[0], reports[1])
	}
	return nil
}

func printReport(w io.Writer, rp *coord.Report) {
	sum := runSummary{JobID: rp.Job, Status: rp.Status, SectionsTotal: rp.SectionsTotal, SectionsDone: rp.SectionsDone,
		Missing: rp.Missing, Agents: rp.Agents, RefusalRate: rp.RefusalRate, MeanAbandonmentTokens: rp.MeanAbandonmentTokens,
		Turns: rp.Turns, Lost: rp.Lost, Words: rp.Words, ElapsedSeconds: rp.ElapsedSeconds}
	if rp.ElapsedSeconds > 0 {
		sum.WordsPerSecond = float64(rp.Words) / rp.ElapsedSeconds
	}
	printRunSummary(w, &sum)
}

// printSideBySide puts the figures that tell two runs apart in one table.
func printSideBySide(w io.Writer, a, b *coord.Report) {
	refusals := func(rp *coord.Report) (n, agents int) {
		for _, ag := range rp.Agents {
			n += ag.Refusals
			if ag.Refused {
				agents++
			}
		}
		return n, agents
	}
	ra, aa := refusals(a)
	rb, ab := refusals(b)
	fmt.Fprintf(w, "\nside by side\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, x, y any) { fmt.Fprintf(tw, "%s\t%v\t%v\t\n", name, x, y) }
	row("", a.Job, b.Job)
	row("status", a.Status, b.Status)
	row("sections written", fmt.Sprintf("%d / %d", a.SectionsDone, a.SectionsTotal), fmt.Sprintf("%d / %d", b.SectionsDone, b.SectionsTotal))
	row("sections missing", len(a.Missing), len(b.Missing))
	row("refusals (agents)", fmt.Sprintf("%d (%d)", ra, aa), fmt.Sprintf("%d (%d)", rb, ab))
	row("turns", a.Turns, b.Turns)
	row("turns lost to refusals and redos", a.Lost.Turns, b.Lost.Turns)
	row("tokens lost", a.Lost.Tokens, b.Lost.Tokens)
	row("backend time lost (s)", fmt.Sprintf("%.2f", a.Lost.Seconds), fmt.Sprintf("%.2f", b.Lost.Seconds))
	row("elapsed (s)", fmt.Sprintf("%.1f", a.ElapsedSeconds), fmt.Sprintf("%.1f", b.ElapsedSeconds))
	tw.Flush()
}
