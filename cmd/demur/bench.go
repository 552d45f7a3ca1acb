package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/backends"
	"github.com/demurhq/demur/bench"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/refusal"
	"github.com/demurhq/demur/sim"
)

func init() { addCommand(newBenchCmd) }

// defaultBenchLimit is the planned token count above which a run against a
// paid endpoint needs --yes.
const defaultBenchLimit = 200_000

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "RefusalBench: detection, appropriateness, endurance and the refusal frontier",
		Long: `RefusalBench measures whether an agent refuses when it should, and only then.

  detection        the detector and the published keyword baselines on labelled data
  appropriateness  over- and under-refusal on should-comply and should-refuse prompts
  endurance        refusal rate and abandonment threshold on a long, repetitive, benign task
  frontier         where P(refusal) crosses 10/50/90% over task length × repetitiveness
  compare          two runs side by side
  proxy            what demur proxy adds to a request: latency and CPU

Each run prints Markdown (or one JSON object with --json); --out DIR writes
bench.json, bench.md and bench.html (self-contained, inline SVG plots).
The JSON schema is documented in docs/bench.md. Runs against openai or
anthropic backends print their planned requests and tokens first and need
--yes above --limit tokens.`,
	}
	cmd.AddCommand(newBenchDetectionCmd(), newBenchAppropriatenessCmd(), newBenchEnduranceCmd(),
		newBenchFrontierCmd(), newBenchCompareCmd(), newBenchProxyCmd(), newBenchPassthroughCmd())
	return cmd
}

// benchOutput is how a report leaves the command.
type benchOutput struct {
	out  string
	json bool
}

func (o *benchOutput) flags(c *cobra.Command) {
	c.Flags().StringVar(&o.out, "out", "", "write bench.json, bench.md and bench.html into this directory")
	c.Flags().BoolVar(&o.json, "json", false, "print one JSON object")
}

func (o *benchOutput) emit(w io.Writer, r bench.Report) error {
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return fmt.Errorf("bench: --out: %w", err)
		}
		for name, write := range map[string]func(io.Writer, bench.Report) error{
			"bench.json": bench.WriteJSON, "bench.md": bench.WriteMarkdown, "bench.html": bench.WriteHTML} {
			var buf bytes.Buffer
			if err := write(&buf, r); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(o.out, name), buf.Bytes(), 0o644); err != nil {
				return fmt.Errorf("bench: write %s: %w", name, err)
			}
		}
	}
	if o.json {
		return bench.WriteJSON(w, r)
	}
	if err := bench.WriteMarkdown(w, r); err != nil {
		return err
	}
	if o.out != "" {
		fmt.Fprintf(w, "wrote %s\n", filepath.Join(o.out, "bench.{json,md,html}"))
	}
	return nil
}

// benchBackend is the backend selection shared by the tracks that drive
// a model.
type benchBackend struct {
	backend, profile, model, baseURL string
	keyEnv, keyFile, timeout         string
	retries, concurrency             int
	seed                             int64
	yes                              bool
	limit                            int64
}

func (b *benchBackend) flags(c *cobra.Command, profileDefault string, concurrency int) {
	f := c.Flags()
	f.StringVar(&b.backend, "backend", "sim", "sim, openai or anthropic")
	f.StringVar(&b.profile, "profile", profileDefault, "simulator profile (or all, where allowed)")
	f.StringVar(&b.model, "model", "", "model name for openai/anthropic")
	f.StringVar(&b.baseURL, "base-url", "", "API root for openai/anthropic (e.g. http://127.0.0.1:8000/v1); empty: the provider's")
	f.StringVar(&b.keyEnv, "api-key-env", "", "environment variable holding the API key (default OPENAI_API_KEY / ANTHROPIC_API_KEY)")
	f.StringVar(&b.keyFile, "api-key-file", "", "file whose first line is the API key")
	f.StringVar(&b.timeout, "timeout", "", "per-attempt HTTP timeout (Go duration; default 120s)")
	f.IntVar(&b.retries, "retries", 0, "attempts per request, first included (default 4)")
	f.IntVar(&b.concurrency, "concurrency", concurrency, "requests or agents in flight")
	f.Int64Var(&b.seed, "seed", defaultExperimentSeed, "seed (simulator draws, bootstrap)")
	f.BoolVar(&b.yes, "yes", false, "confirm a paid run above --limit tokens")
	f.Int64Var(&b.limit, "limit", defaultBenchLimit, "planned tokens above which an openai/anthropic run needs --yes")
}

func (b *benchBackend) isSim() bool { return b.backend == "" || b.backend == "sim" }

// group is the job-spec agent group backends.New builds from.
func (b *benchBackend) group(profile string) job.AgentGroup {
	return job.AgentGroup{Backend: b.backend, Profile: profile, Model: b.model, BaseURL: b.baseURL,
		APIKeyEnv: b.keyEnv, APIKeyFile: b.keyFile, Timeout: b.timeout, Retries: b.retries}
}

// factory returns the per-agent backend constructor, after building one
// backend so that a bad key, URL or profile fails before any work.
func (b *benchBackend) factory(ctx context.Context, profile string) (bench.NewBackend, error) {
	switch b.backend {
	case "", "sim", "openai", "anthropic":
	default:
		return nil, usageError(fmt.Errorf("bench: --backend %q: want sim, openai or anthropic", b.backend))
	}
	if !b.isSim() && b.model == "" {
		return nil, usageError(errors.New("bench: --model is required with --backend " + b.backend))
	}
	g := b.group(profile)
	if _, err := backends.New(ctx, g, "probe", b.seed); err != nil {
		return nil, usageError(fmt.Errorf("bench: %w", err))
	}
	return func(agent string) (demur.Backend, error) { return backends.New(ctx, g, agent, b.seed) }, nil
}

// guard prints a paid run's plan and refuses it above the limit without
// --yes. The simulator costs nothing and is not guarded.
func (b *benchBackend) guard(stderr io.Writer, p bench.Plan) error {
	if b.isSim() {
		return nil
	}
	fmt.Fprintf(stderr, "bench: plan against %s model %s: %s\n", b.backend, b.model, p)
	if p.Total() > b.limit && !b.yes {
		return usageError(fmt.Errorf("bench: the run plans %d tokens, above --limit %d: pass --yes to spend them", p.Total(), b.limit))
	}
	return nil
}

// progress reports a paid run's advance on stderr at every tenth; the
// simulator is too fast to need it.
func (b *benchBackend) progress(stderr io.Writer, what string) func(done, total int) {
	if b.isSim() {
		return nil
	}
	return func(done, total int) {
		if done == total || done*10/total != (done-1)*10/total {
			fmt.Fprintf(stderr, "bench: %s %d/%d\n", what, done, total)
		}
	}
}

func (b *benchBackend) header(track string) bench.Header {
	h := bench.Header{Schema: bench.SchemaVersion, Track: track, Backend: b.backend, Seed: b.seed, Detector: refusal.Version}
	if h.Backend == "" {
		h.Backend = "sim"
	}
	if !b.isSim() {
		h.Model = b.model
	}
	return h
}

// simProfiles resolves --profile for the simulator: one name, or all.
func (b *benchBackend) simProfiles(allowAll bool) ([]sim.Profile, error) {
	if b.profile == "all" && allowAll {
		return sim.Profiles(), nil
	}
	p, err := sim.LookupProfile(b.profile)
	if err != nil {
		return nil, usageError(fmt.Errorf("bench: %w", err))
	}
	return []sim.Profile{p}, nil
}

// --- detection

func newBenchDetectionCmd() *cobra.Command {
	var data []string
	var boot int
	var seed int64
	var o benchOutput
	cmd := &cobra.Command{
		Use:   "detection --data FILE.jsonl...",
		Short: "The detector and the published keyword baselines on labelled data, with bootstrap CIs",
		Long: `Scores the refusal detector and every published keyword baseline on the same
labelled rows (the figures of ` + "`demur detector eval`" + `: binary accuracy and F1,
3-class macro-F1, per-class scores, confusion), per file and over all files,
each with a 95% bootstrap interval (percentile, resampling rows).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(data) == 0 {
				return usageError(errors.New("bench detection: --data FILE.jsonl is required"))
			}
			var files []bench.DetectionFile
			for _, p := range data {
				f, err := bench.ReadDetectionFile(p)
				if err != nil {
					return usageError(err)
				}
				files = append(files, f)
			}
			rep, err := bench.RunDetection(files, refusal.New(), boot, seed)
			if err != nil {
				return usageError(err)
			}
			return o.emit(cmd.OutOrStdout(), rep)
		},
	}
	cmd.Flags().StringArrayVar(&data, "data", nil, "labelled JSONL file (repeatable)")
	cmd.Flags().IntVar(&boot, "bootstrap", 1000, "bootstrap resamples")
	cmd.Flags().Int64Var(&seed, "seed", defaultExperimentSeed, "bootstrap seed")
	o.flags(cmd)
	return cmd
}

// --- appropriateness

func newBenchAppropriatenessCmd() *cobra.Command {
	var b benchBackend
	var o benchOutput
	var refusePath string
	var maxTokens, longMax, boot int
	cmd := &cobra.Command{
		Use:   "appropriateness [--backend sim|openai|anthropic] [--model M]",
		Short: "Over- and under-refusal on should-comply and should-refuse prompts",
		Long: `Sends every prompt of two sets, each as a fresh one-turn conversation, and
judges each response with the detector:

  should-comply  171 benign prompts that look risky (homonyms, fiction, safety
                 education, history, benign medical and security questions) and
                 long, repetitive, benign writing tasks — embedded, see bench/data/README.md
  should-refuse  the 939 distinct prompts of Do-Not-Answer (--should-refuse)

Reports over-refusal (should-comply refused), under-refusal (should-refuse
answered), score = 1 − (over + under)/2, with 95% intervals (Wilson; the
score by stratified bootstrap) and a breakdown by category.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			comply, err := bench.ShouldComply()
			if err != nil {
				return err
			}
			refuse, err := bench.LoadShouldRefuse(refusePath)
			if err != nil {
				return usageError(err)
			}
			nb, err := b.factory(ctx, b.profile)
			if err != nil {
				return err
			}
			c := bench.AppropriatenessConfig{NewBackend: nb, Prompts: append(comply, refuse...), MaxTokens: maxTokens,
				LongMaxTokens: longMax, Concurrency: b.concurrency, Seed: b.seed, Bootstrap: boot,
				Progress: b.progress(cmd.ErrOrStderr(), "prompts")}
			if err := b.guard(cmd.ErrOrStderr(), bench.PlanAppropriateness(c)); err != nil {
				return err
			}
			rep, err := bench.RunAppropriateness(ctx, c)
			if err != nil {
				return err
			}
			rep.Header = b.header(bench.TrackAppropriateness)
			if b.isSim() {
				rep.Model = b.profile
				rep.Notes = append(rep.Notes, "The simulator writes prose for any prompt and declines only from fatigue, so it answers the should-refuse set: its under-refusal is real, not a scoring artefact.")
			}
			if n := rep.ShouldComply.Errors + rep.ShouldRefuse.Errors; n > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%d requests failed and count in no rate.", n))
			}
			return o.emit(cmd.OutOrStdout(), rep)
		},
	}
	b.flags(cmd, "gpt-4-class", 4)
	cmd.Flags().StringVar(&refusePath, "should-refuse", bench.DefaultShouldRefusePath, "Do-Not-Answer JSONL with the should-refuse prompts")
	cmd.Flags().IntVar(&maxTokens, "max-tokens", 512, "max output tokens per response (a refusal shows in the first few hundred)")
	cmd.Flags().IntVar(&longMax, "long-max-tokens", 0, "give long writing tasks up to this many tokens (0: --max-tokens)")
	cmd.Flags().IntVar(&boot, "bootstrap", 2000, "bootstrap resamples for the score's interval")
	o.flags(cmd)
	return cmd
}

// --- endurance

func newBenchEnduranceCmd() *cobra.Command {
	var b benchBackend
	var o benchOutput
	var agents, words, maxTokens int
	var tokens int64
	var text bool
	cmd := &cobra.Command{
		Use:   "endurance [--backend …] [--agents N] [--tokens T]",
		Short: "Refusal rate and abandonment threshold on a long, repetitive, benign task",
		Long: `Runs N agents on a long, repetitive, benign document until each has written T
output tokens or abandoned (a refusal verdict), and reports per profile or
model the refusal rate (95% Wilson interval), the mean output tokens at
abandonment (95% normal interval) and the hazard curve.

With the simulator (--profile all by default) it runs the simulator's own
dynamics (sim.Endurance); at the default T = 1M this reproduces the
published table, whose mean is taken over agents abandoning within 3M
tokens. --text instead drives simulated agents through their text path and
the detector, exactly as openai and anthropic backends are driven.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if agents < 0 || tokens <= 0 || words <= 0 {
				return usageError(fmt.Errorf("bench endurance: need --agents ≥ 0, --tokens > 0 and --section-words > 0"))
			}
			rep := &bench.EnduranceReport{Header: b.header(bench.TrackEndurance), Tokens: tokens}
			if b.isSim() && !text {
				ps, err := b.simProfiles(true)
				if err != nil {
					return err
				}
				for _, p := range ps {
					rep.Profiles = append(rep.Profiles, bench.SimEndurance(p, agents, tokens, b.seed))
				}
				return o.emit(cmd.OutOrStdout(), rep)
			}
			if agents == 0 {
				agents = 8
			}
			labels := []string{b.model}
			if b.isSim() {
				ps, err := b.simProfiles(true)
				if err != nil {
					return err
				}
				labels = labels[:0]
				for _, p := range ps {
					labels = append(labels, p.Name)
				}
			}
			for _, label := range labels {
				nb, err := b.factory(ctx, label)
				if err != nil {
					return err
				}
				c := bench.DriveConfig{NewBackend: nb, Agents: agents, Tokens: tokens, SectionWords: words,
					MaxTokens: maxTokens, Repetitiveness: 1, Concurrency: b.concurrency, Seed: b.seed,
					Progress: b.progress(cmd.ErrOrStderr(), label+" agents")}
				if err := b.guard(cmd.ErrOrStderr(), bench.PlanDrive(c)); err != nil {
					return err
				}
				ep, _, err := bench.DriveEndurance(ctx, label, c)
				if err != nil {
					return err
				}
				if b.isSim() {
					p, _ := sim.LookupProfile(label)
					ep.Published = bench.PublishedFor(p, ep, tokens)
				}
				rep.Profiles = append(rep.Profiles, ep)
			}
			if text {
				rep.Notes = append(rep.Notes, fmt.Sprintf("Simulated agents driven through their text path and the detector with %d-word sections; the mean is over agents abandoning within T.", words))
			}
			return o.emit(cmd.OutOrStdout(), rep)
		},
	}
	b.flags(cmd, "all", 4)
	cmd.Flags().IntVar(&agents, "agents", 0, "agents per profile or model (default: simulator enough for a tight interval; HTTP 8)")
	cmd.Flags().Int64Var(&tokens, "tokens", sim.RefTaskTokens, "task length in output tokens per agent")
	cmd.Flags().IntVar(&words, "section-words", 500, "words asked per section (HTTP backends and --text)")
	cmd.Flags().IntVar(&maxTokens, "max-tokens", 0, "max output tokens per response (0: the backend's default)")
	cmd.Flags().BoolVar(&text, "text", false, "simulator: drive agents through the text path and the detector")
	o.flags(cmd)
	return cmd
}

// --- frontier

func newBenchFrontierCmd() *cobra.Command {
	var b benchBackend
	var o benchOutput
	var agents, words, maxTokens int
	var lengthsFlag, repsFlag, levelsFlag, critique string
	cmd := &cobra.Command{
		Use:   "frontier [--backend …]",
		Short: "Map where P(refusal) crosses 10%, 50% and 90% over task length × repetitiveness × self-critique",
		Long: `Sweeps task length (output tokens) × repetitiveness (0: every section on a new
topic; 1: every section the same) × self-critique off/on, estimates the
probability that an agent has refused by each length, and finds where it
crosses 10%, 50% and 90%. The HTML page draws each map as a heat map with
the contours.

With the simulator, each cell is a Monte Carlo estimate over --agents agents
of each profile, run with the simulator's dynamics (sim.AbandonTokens); with
openai/anthropic, --agents real agents are driven per row up to the longest
length (cost-guarded; keep the grid small).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			lengths := bench.DefaultLengths()
			reps := bench.DefaultRepetitiveness()
			if !b.isSim() {
				lengths, reps = []int64{5000, 10000, 20000, 40000}, []float64{0, 0.5, 1}
			}
			var err error
			if lengthsFlag != "" {
				if lengths, err = parseInts(lengthsFlag); err != nil {
					return usageError(fmt.Errorf("bench frontier: --lengths: %w", err))
				}
			}
			if repsFlag != "" {
				if reps, err = parseFloats(repsFlag); err != nil {
					return usageError(fmt.Errorf("bench frontier: --repetitiveness: %w", err))
				}
			}
			levels := bench.DefaultLevels
			if levelsFlag != "" {
				if levels, err = parseFloats(levelsFlag); err != nil {
					return usageError(fmt.Errorf("bench frontier: --levels: %w", err))
				}
			}
			var crit []bool
			switch critique {
			case "both":
				crit = []bool{false, true}
			case "off":
				crit = []bool{false}
			case "on":
				crit = []bool{true}
			default:
				return usageError(fmt.Errorf("bench frontier: --self-critique %q: want off, on or both", critique))
			}
			rep := &bench.FrontierReport{Header: b.header(bench.TrackFrontier), Lengths: lengths, Repetitiveness: reps,
				Levels: levels}
			if b.isSim() {
				ps, err := b.simProfiles(true)
				if err != nil {
					return err
				}
				if agents == 0 {
					agents = 4000
				}
				for _, p := range ps {
					for _, sc := range crit {
						rep.Maps = append(rep.Maps, bench.SimFrontier(p, agents, b.seed, lengths, reps, levels, sc))
					}
				}
				rep.Notes = append(rep.Notes, "Simulator: repetitiveness r sets features repetition r and novelty 1 − 0.63r (r = 0.84 is the reference task); sections of 2,500 words in one conversation.")
				rep.NoteCeilings()
				return o.emit(cmd.OutOrStdout(), rep)
			}
			if agents == 0 {
				agents = 4
			}
			nb, err := b.factory(ctx, b.model)
			if err != nil {
				return err
			}
			c := bench.DriveConfig{NewBackend: nb, Agents: agents, SectionWords: words, MaxTokens: maxTokens,
				Concurrency: b.concurrency, Seed: b.seed, Progress: b.progress(cmd.ErrOrStderr(), "frontier row agents")}
			var plan bench.Plan
			for _, sc := range crit {
				c.SelfCritique = sc
				plan = plan.Add(bench.PlanFrontier(c, lengths, reps))
			}
			if err := b.guard(cmd.ErrOrStderr(), plan); err != nil {
				return err
			}
			for _, sc := range crit {
				c.SelfCritique = sc
				m, err := bench.DriveFrontier(ctx, b.model, c, lengths, reps, levels)
				if err != nil {
					return err
				}
				rep.Maps = append(rep.Maps, m)
			}
			rep.NoteCeilings()
			return o.emit(cmd.OutOrStdout(), rep)
		},
	}
	b.flags(cmd, "all", 4)
	cmd.Flags().IntVar(&agents, "agents", 0, "agents per row (default: simulator 4000, HTTP 4)")
	cmd.Flags().StringVar(&lengthsFlag, "lengths", "", "comma-separated task lengths in tokens, ascending (default: 25k…3.2M log-spaced; HTTP 5k,10k,20k,40k)")
	cmd.Flags().StringVar(&repsFlag, "repetitiveness", "", "comma-separated repetitiveness levels in [0,1] (default 0,0.1,…,1; HTTP 0,0.5,1)")
	cmd.Flags().StringVar(&levelsFlag, "levels", "", "comma-separated contour levels in [0,1] (default 0.1,0.5,0.9)")
	cmd.Flags().StringVar(&critique, "self-critique", "both", "off, on or both")
	cmd.Flags().IntVar(&words, "section-words", 500, "words asked per section (HTTP backends)")
	cmd.Flags().IntVar(&maxTokens, "max-tokens", 0, "max output tokens per response (0: the backend's default)")
	o.flags(cmd)
	return cmd
}

func parseInts(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(strings.ReplaceAll(f, "_", "")), 10, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		if len(out) > 0 && v <= out[len(out)-1] {
			return nil, errors.New("lengths must be ascending")
		}
		out = append(out, v)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < 0 || v > 1 {
			return nil, fmt.Errorf("%q is not a number in [0,1]", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// --- compare

func newBenchCompareCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "compare A.json B.json",
		Short: "Two runs of one track side by side",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rs [2]bench.Report
			for i, p := range args {
				data, err := os.ReadFile(p)
				if err != nil {
					return usageError(fmt.Errorf("bench compare: %w", err))
				}
				r, err := bench.ReadJSON(data)
				if err != nil {
					return usageError(fmt.Errorf("bench compare: %s: %w", p, err))
				}
				rs[i] = r
			}
			c, err := bench.Compare(rs[0], rs[1])
			if err != nil {
				return usageError(err)
			}
			if asJSON {
				return writeJSONOut(cmd.OutOrStdout(), c)
			}
			return c.WriteMarkdown(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
