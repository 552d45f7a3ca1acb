package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur/sim"
)

func init() { addCommand(newExperimentCmd) }

// defaultExperimentSeed is the seed `demur experiment` uses unless told.
const defaultExperimentSeed = 42

type experimentOptions struct {
	profile string
	agents  int
	seed    int64
	json    bool
}

func newExperimentCmd() *cobra.Command {
	var o experimentOptions
	cmd := &cobra.Command{
		Use:   "experiment",
		Short: "Simulate many agents per profile on a long repetitive task",
		Long: `Simulate many agents of each simulator profile on the reference task (a long,
repetitive, benign document) and print the refusal rate on a 1M-token task
and the mean output tokens at abandonment among agents that abandon (within
3M tokens), each with a 95% confidence interval (Wilson for the rate, normal
for the mean), beside the published figures the profiles are calibrated to.
The run uses the simulator's own aversion dynamics without rendering text.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runExperiment(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.profile, "profile", "all", "profile name, or all")
	f.IntVar(&o.agents, "agents", 0, "agents per profile (default: enough for a CI half-width near 9% of the published rate)")
	f.Int64Var(&o.seed, "seed", defaultExperimentSeed, "seed")
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// experimentResult is one profile's line of `demur experiment --json`.
type experimentResult struct {
	Profile               string     `json:"profile"`
	Agents                int        `json:"agents"`
	RefusalRate           float64    `json:"refusal_rate"`
	RefusalRateCI         [2]float64 `json:"refusal_rate_ci"`
	MeanAbandonmentTokens float64    `json:"mean_abandonment_tokens"`
	MeanAbandonmentCI     [2]float64 `json:"mean_abandonment_ci"`
	Abandoned             int        `json:"abandoned"`
	// HazardPer100k counts abandonments per 100k-token bin up to the cap.
	HazardPer100k            []int   `json:"hazard_per_100k"`
	PublishedRefusalRate     float64 `json:"published_refusal_rate"`
	PublishedMeanAbandonment float64 `json:"published_mean_abandonment_tokens"`
	Seed                     int64   `json:"seed"`
	ElapsedS                 float64 `json:"elapsed_s"`
}

func runExperiment(o experimentOptions, stdout io.Writer) error {
	if o.agents < 0 {
		return usageError(fmt.Errorf("experiment: --agents must be positive, got %d", o.agents))
	}
	profiles := sim.Profiles()
	if o.profile != "all" {
		p, err := sim.LookupProfile(o.profile)
		if err != nil {
			return usageError(fmt.Errorf("experiment: %w", err))
		}
		profiles = []sim.Profile{p}
	}
	results := make([]experimentResult, 0, len(profiles))
	for _, p := range profiles {
		n := o.agents
		if n == 0 {
			n = sim.DefaultAgents(p)
		}
		start := time.Now()
		r := sim.Endurance(p, n, o.seed)
		results = append(results, experimentResult{
			Profile: r.Profile, Agents: r.Agents,
			RefusalRate: r.RefusalRate, RefusalRateCI: r.RefusalRateCI,
			MeanAbandonmentTokens: r.MeanAbandonmentTokens, MeanAbandonmentCI: r.MeanAbandonmentCI,
			Abandoned: r.Abandoned, HazardPer100k: r.Hazard,
			PublishedRefusalRate: p.RefusalRate, PublishedMeanAbandonment: p.MeanThreshold,
			Seed: o.seed, ElapsedS: time.Since(start).Seconds(),
		})
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		var v any = results[0]
		if o.profile == "all" {
			v = struct {
				Profiles []experimentResult `json:"profiles"`
				Seed     int64              `json:"seed"`
			}{results, o.seed}
		}
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("experiment: write json: %w", err)
		}
		return nil
	}
	return printExperiment(stdout, results)
}

func printExperiment(w io.Writer, results []experimentResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "profile\tagents\trefusal rate\t95% CI\tpublished\tmean tokens at abandonment\t95% CI\tpublished\tabandoned")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.3f%%\t[%.3f%%, %.3f%%]\t%.1f%% %s\t%.0f\t[%.0f, %.0f]\t%.0f %s\t%d\n",
			r.Profile, r.Agents, 100*r.RefusalRate, 100*r.RefusalRateCI[0], 100*r.RefusalRateCI[1],
			100*r.PublishedRefusalRate, inCI(r.PublishedRefusalRate, r.RefusalRateCI),
			r.MeanAbandonmentTokens, r.MeanAbandonmentCI[0], r.MeanAbandonmentCI[1],
			r.PublishedMeanAbandonment, inCI(r.PublishedMeanAbandonment, r.MeanAbandonmentCI), r.Abandoned)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("experiment: write table: %w", err)
	}
	fmt.Fprintf(w, "seed %d; rate = abandoned within 1M tokens; mean over agents abandoning within 3M tokens\n", results[0].Seed)
	return nil
}

// inCI marks whether the published figure lies inside the interval.
func inCI(x float64, ci [2]float64) string {
	if x >= ci[0] && x <= ci[1] {
		return "(in CI)"
	}
	return "(OUTSIDE CI)"
}
