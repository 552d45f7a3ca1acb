package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur/sla"
)

func init() { addCommand(newSLACmd) }

type slaOptions struct {
	file  string
	store string
	json  bool
}

func newSLACmd() *cobra.Command {
	var o slaOptions
	cmd := &cobra.Command{
		Use:   "sla",
		Short: "Check refusal SLAs against the audit log: burn-rate alerts, compliance, credits",
		Long: `Service-level objectives for refusals, written in YAML (docs/dashboard.md):
a maximum refusal rate, a maximum abandonment rate, a time to recover a
refused work item — per task type and per model. Everything is computed from
the audit log.

  demur sla check    evaluate now; multi-window burn-rate alerts go to the
                     file's webhook; exit 1 while any alert fires
  demur sla report   compliance and contract credits for a period`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.file, "sla", "", "SLA file (required)")
	pf.StringVar(&o.store, "store", "", "store URL (default $"+storeEnv+")")
	pf.BoolVar(&o.json, "json", false, "print JSON")
	cmd.AddCommand(newSLACheckCmd(&o), newSLAReportCmd(&o))
	return cmd
}

func (o *slaOptions) load() (*sla.Spec, error) {
	if o.file == "" {
		return nil, usageError(fmt.Errorf("--sla FILE is required"))
	}
	s, err := sla.Load(o.file)
	if err != nil {
		return nil, usageError(err)
	}
	return s, nil
}

func newSLACheckCmd(o *slaOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Evaluate the objectives now and deliver burn-rate alerts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSLACheck(cmd.Context(), o, time.Now(), cmd.OutOrStdout())
		},
	}
}

func runSLACheck(ctx context.Context, o *slaOptions, now time.Time, w io.Writer) error {
	spec, err := o.load()
	if err != nil {
		return err
	}
	st, err := openNamedStore(ctx, o.store)
	if err != nil {
		return err
	}
	defer st.Close()
	wt := &sla.Watcher{Spec: spec, Store: st}
	if spec.Alerts.Webhook != "" {
		wt.Notify = &sla.Webhook{URL: spec.Alerts.Webhook, Retries: spec.Alerts.Retries}
	}
	alerts, deliverErr := wt.Check(ctx, now)
	if alerts == nil && deliverErr != nil {
		return deliverErr
	}
	statuses := wt.Statuses()
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"time": now, "objectives": statuses, "alerts": alerts}); err != nil {
			return err
		}
	} else {
		printSLAStatus(w, statuses)
	}
	if deliverErr != nil {
		return problemError(fmt.Errorf("sla: deliver alerts: %w", deliverErr))
	}
	if n := len(alerts); n > 0 {
		return problemError(fmt.Errorf("sla: %d burn-rate alert(s) firing", n))
	}
	return nil
}

func printSLAStatus(w io.Writer, statuses []sla.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "objective\tsli\tscope\tbad/total\trate\tmax\tbudget left\tfiring")
	for _, s := range statuses {
		var fires []string
		for _, f := range s.Firing {
			fires = append(fires, fmt.Sprintf("%s %s/%s burn %.1f≥%.1f", f.Severity, f.Long, f.Short, f.ShortBurn, f.Threshold))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%.2f%%\t%.2f%%\t%.0f%%\t%s\n", s.Objective.Name, s.Objective.SLI, scope(s.Objective),
			s.Bad, s.Total, 100*s.Rate, 100*s.Objective.Max, 100*s.BudgetRemaining, orDash(strings.Join(fires, "; ")))
	}
	tw.Flush()
}

func scope(o sla.Objective) string {
	var p []string
	if o.TaskType != "" {
		p = append(p, "task_type="+o.TaskType)
	}
	if o.Model != "" {
		p = append(p, "model="+o.Model)
	}
	return orDash(strings.Join(p, ","))
}

func newSLAReportCmd(o *slaOptions) *cobra.Command {
	var from, to string
	var period time.Duration
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Compliance and contract credits for a period",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			end, start := time.Now(), time.Time{}
			var err error
			if to != "" {
				if end, err = time.Parse(time.RFC3339, to); err != nil {
					return usageError(fmt.Errorf("--to: %w", err))
				}
			}
			if from != "" {
				if start, err = time.Parse(time.RFC3339, from); err != nil {
					return usageError(fmt.Errorf("--from: %w", err))
				}
			} else {
				start = end.Add(-period)
			}
			if !start.Before(end) {
				return usageError(fmt.Errorf("the period is empty: %s to %s", start.Format(time.RFC3339), end.Format(time.RFC3339)))
			}
			return runSLAReport(cmd.Context(), o, start, end, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "period start, RFC 3339 (default --to minus --period)")
	f.StringVar(&to, "to", "", "period end, RFC 3339 (default now)")
	f.DurationVar(&period, "period", 30*24*time.Hour, "period length when --from is not given")
	return cmd
}

func runSLAReport(ctx context.Context, o *slaOptions, from, to time.Time, w io.Writer) error {
	spec, err := o.load()
	if err != nil {
		return err
	}
	st, err := openNamedStore(ctx, o.store)
	if err != nil {
		return err
	}
	defer st.Close()
	events, err := sla.Events(ctx, st, to)
	if err != nil {
		return fmt.Errorf("sla report: %w", err)
	}
	rp := spec.Report(events, from, to)
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rp)
	}
	fmt.Fprintf(w, "SLA report %s to %s\n\n", from.Format(time.RFC3339), to.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "objective\tsli\tscope\tbad/total\twindows met\tcompliance\tbudget used\tcredit")
	for _, c := range rp.Objectives {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d/%d\t%.2f%%\t%.0f%%\t%.0f%%\n", c.Objective.Name, c.Objective.SLI, scope(c.Objective),
			c.Bad, c.Total, c.Met, c.Windows, 100*c.Compliance, 100*c.BudgetUsed, c.Credit)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ncredit for the period: %.0f%%\n", rp.Credit)
	return nil
}
