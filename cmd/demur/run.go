package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/coord"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/natsbus"
	"github.com/demurhq/demur/policy"
	"github.com/demurhq/demur/refusal"
	"github.com/demurhq/demur/sim"
	"github.com/demurhq/demur/storeurl"
)

func init() { addCommand(newRunCmd) }

type runOptions struct {
	seed  int64
	out   string
	store string
	json  bool
}

func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run JOB.yaml",
		Short: "Run a job to completion, or resume it from its log",
		Long: `Run a job: a coordinator and its agents, connected over an embedded NATS
JetStream bus, write the document the spec describes. Every turn, verdict,
decision and the simulator's ground truth go to the store. Running the same
spec and seed again resumes the job from its log.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("seed") {
				o.seed = -1
			}
			return runJob(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.seed, "seed", 0, "seed (overrides the spec's)")
	f.StringVar(&o.out, "out", "", "output directory (default out/NAME)")
	f.StringVar(&o.store, "store", "", "store URL (default the spec's, else sqlite://OUT/demur.db)")
	f.BoolVar(&o.json, "json", false, "print one JSON object")
	return cmd
}

// runSummary is the --json output of demur run; its fields are stable.
type runSummary struct {
	JobID                 string              `json:"job_id"`
	Status                string              `json:"status"`
	SectionsTotal         int                 `json:"sections_total"`
	SectionsDone          int                 `json:"sections_done"`
	Missing               []string            `json:"missing,omitempty"`
	Document              string              `json:"document"`
	Store                 string              `json:"store"`
	Agents                []coord.AgentReport `json:"agents"`
	RefusalRate           float64             `json:"refusal_rate"`
	MeanAbandonmentTokens float64             `json:"mean_abandonment_tokens"`
	Turns                 int                 `json:"turns"`
	Words                 int64               `json:"words"`
	WordsPerSecond        float64             `json:"words_per_s"`
	ElapsedSeconds        float64             `json:"elapsed_s"`
}

// plannedJob is a validated spec with everything derived from it, built
// before anything touches the disk.
type plannedJob struct {
	spec     *job.Spec
	specData []byte
	out      string
	storeURL string
	agents   []demur.AgentEntry
	profiles []sim.Profile
}

func planJob(path string, o runOptions) (*plannedJob, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError(fmt.Errorf("read job spec: %w", err))
	}
	spec, err := job.Parse(path, data)
	if err != nil {
		return nil, usageError(err)
	}
	if o.seed >= 0 {
		spec.Seed = o.seed
	}
	p := &plannedJob{spec: spec, specData: data, out: o.out, storeURL: o.store}
	if p.out == "" {
		p.out = filepath.Join("out", spec.Name)
	}
	if p.storeURL == "" {
		p.storeURL = spec.Store
	}
	if p.storeURL == "" {
		p.storeURL = "sqlite://" + filepath.Join(p.out, "demur.db")
	}
	if !knownScheme(p.storeURL) {
		return nil, usageError(fmt.Errorf("store %q: want one of %s", p.storeURL, strings.Join(storeurl.Schemes, ", ")))
	}
	for gi, g := range spec.Agents {
		if g.Backend != "sim" {
			return nil, usageError(spec.ErrorAt(fmt.Sprintf("$.agents[%d].backend", gi), "unknown backend %q (want sim)", g.Backend))
		}
		prof, err := sim.LookupProfile(g.Profile)
		if err != nil {
			return nil, usageError(spec.ErrorAt(fmt.Sprintf("$.agents[%d].profile", gi), "%v", err))
		}
		for range g.Count {
			id := fmt.Sprintf("agent-%02d", len(p.agents)+1)
			p.agents = append(p.agents, demur.AgentEntry{ID: id, Backend: g.Backend, Model: prof.Name, SelfCritique: g.SelfCritique})
			p.profiles = append(p.profiles, prof)
		}
	}
	return p, nil
}

func knownScheme(url string) bool {
	for _, s := range storeurl.Schemes {
		if strings.HasPrefix(url, s+"://") {
			return true
		}
	}
	return false
}

func runJob(ctx context.Context, o runOptions, path string, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	p, err := planJob(path, o)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	if err := os.MkdirAll(p.out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	store, err := storeurl.Open(ctx, p.storeURL)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()
	bus, err := natsbus.Embedded(ctx, natsbus.EmbeddedOptions{})
	if err != nil {
		return fmt.Errorf("start bus: %w", err)
	}
	defer bus.Close()

	tasks := coord.Plan(p.spec)
	jobID := p.spec.JobID()
	show := newProgress(stderr, !o.json, p, len(tasks))
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	agentErrs := startAgents(agentCtx, p, jobID, bus)

	det := refusal.New()
	pol := policy.Default()
	pol.RetireAfter, pol.MaxAttempts, pol.MinConfidence = p.spec.Policy.RetireAfter, p.spec.Policy.MaxAttempts, p.spec.Policy.MinConfidence
	c := coord.New(coord.Config{
		Job: jobID, Spec: p.specData, Seed: p.spec.Seed, Tasks: tasks, Agents: p.agents,
		Bus: bus, Store: store, Policy: pol, OnEvent: show.event,
		NewDetector: func(string) demur.Detector { return refusal.NewStream(det, 8) },
	})
	_, runErr := c.Run(ctx)
	stopAgents()
	agErr := agentErrs()
	show.close()
	if runErr != nil {
		if ctx.Err() != nil {
			return problemError(fmt.Errorf("interrupted; run the same command again to resume job %s from %s", jobID, p.storeURL))
		}
		return fmt.Errorf("run job %s: %w", jobID, errors.Join(runErr, agErr))
	}
	rp, err := coord.BuildReport(ctx, store, jobID)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	doc := filepath.Join(p.out, "document.md")
	if err := coord.WriteDocument(ctx, store, rp, tasks, doc); err != nil {
		return err
	}
	el := time.Since(start).Seconds()
	sum := runSummary{
		JobID: jobID, Status: rp.Status, SectionsTotal: rp.SectionsTotal, SectionsDone: rp.SectionsDone,
		Missing: rp.Missing, Document: doc, Store: p.storeURL, Agents: rp.Agents,
		RefusalRate: rp.RefusalRate, MeanAbandonmentTokens: rp.MeanAbandonmentTokens,
		Turns: rp.Turns, Words: rp.Words, WordsPerSecond: float64(rp.Words) / el, ElapsedSeconds: el,
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		printRunSummary(stdout, &sum)
	}
	if rp.Status != coord.StatusCompleted {
		return problemError(fmt.Errorf("job %s is %s: %d of %d sections written", jobID, rp.Status, rp.SectionsDone, rp.SectionsTotal))
	}
	return nil
}

// startAgents runs one goroutine per agent and returns a function that
// waits for them all and joins their errors.
func startAgents(ctx context.Context, p *plannedJob, jobID string, bus demur.Bus) (wait func() error) {
	var wg sync.WaitGroup
	errs := make([]error, len(p.agents))
	for i, a := range p.agents {
		ag := &coord.Agent{
			ID: a.ID, Job: jobID, Agents: len(p.agents), Model: a.Model, Bus: bus, Logprobs: true,
			Backend: sim.New(sim.Config{Profile: p.profiles[i], Seed: p.spec.Seed, Agent: a.ID, SelfCritique: a.SelfCritique}),
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ag.Run(ctx)
		}()
	}
	return func() error {
		wg.Wait()
		return errors.Join(errs...)
	}
}

func printRunSummary(w io.Writer, s *runSummary) {
	fmt.Fprintf(w, "\njob %s: %s — %d of %d sections, %d words in %.1fs (%.0f words/s)\n\n",
		s.JobID, s.Status, s.SectionsDone, s.SectionsTotal, s.Words, s.ElapsedSeconds, s.WordsPerSecond)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "agent\tmodel\twords\ttokens\tsections\trefused\ttokens at refusal\treason\tretired\t")
	for _, a := range s.Agents {
		at, reason := "-", "-"
		if a.Refused {
			at, reason = fmt.Sprint(a.TokensAtRefusal), a.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", a.ID, a.Model, a.Words, a.Tokens, a.Sections,
			yesNo(a.Refused), at, reason, yesNo(a.Retired))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nrefusal rate %.1f%%; mean abandonment threshold %.0f tokens\n", 100*s.RefusalRate, s.MeanAbandonmentTokens)
	if len(s.Missing) > 0 {
		fmt.Fprintf(w, "missing sections: %s\n", strings.Join(s.Missing, ", "))
	}
	fmt.Fprintf(w, "document: %s\nstore:    %s\n", s.Document, s.Store)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

