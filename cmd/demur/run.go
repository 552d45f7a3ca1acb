package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/backends"
	"github.com/demurhq/demur/coord"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/monitor"
	"github.com/demurhq/demur/natsbus"
	"github.com/demurhq/demur/otel"
	"github.com/demurhq/demur/override"
	"github.com/demurhq/demur/policy"
	"github.com/demurhq/demur/refusal"
	"github.com/demurhq/demur/sla"
	"github.com/demurhq/demur/storeurl"
	"github.com/demurhq/demur/web"
)

func init() { addCommand(newRunCmd) }

type runOptions struct {
	ui     string
	policy string
	seed   int64
	out    string
	store  string
	json   bool
	// nats, when its url is set, joins an external NATS server and
	// leaves the agents to `demur agent` workers (docs/distributed.md).
	nats natsFlags
	// sla, with ui, is an SLA file checked during the run (as serve --sla).
	sla string
	// otlp is the OTLP collector traces go to (docs/tracing.md).
	otlp string
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
	f.StringVar(&o.ui, "ui", "", "serve the dashboard and override API on this address during the run, e.g. 127.0.0.1:8080")
	f.StringVar(&o.policy, "policy", "", "router policy file, or none for no refusal management (default the spec's, else the shipped policy)")
	f.StringVar(&o.sla, "sla", "", "with --ui: SLA file checked during the run, as serve --sla does: its webhook alerted, shown on the dashboard and /metrics")
	registerOTLP(f, &o.otlp)
	o.nats.register(f, false)
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
	Lost                  coord.Lost          `json:"lost"`
	Words                 int64               `json:"words"`
	WordsPerSecond        float64             `json:"words_per_s"`
	ElapsedSeconds        float64             `json:"elapsed_s"`
	// TraceID is the job's OpenTelemetry trace, when traces are exported.
	TraceID string `json:"trace_id,omitempty"`
}

// plannedJob is a validated spec with everything derived from it, built
// before anything touches the disk.
type plannedJob struct {
	spec     *job.Spec
	specData []byte
	out      string
	storeURL string
	agents   []demur.AgentEntry
	groups   []int // each agent's group in spec.Agents
	policy   *policy.Policy
	sla      *sla.Spec // --sla, loaded
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
	if err := backends.Validate(spec); err != nil {
		return nil, usageError(err)
	}
	if p.policy, err = jobPolicy(spec, o.policy); err != nil {
		return nil, usageError(err)
	}
	if o.sla != "" {
		if o.ui == "" {
			return nil, usageError(errors.New("--sla needs --ui: the run's SLA is shown on its dashboard"))
		}
		if p.sla, err = sla.Load(o.sla); err != nil {
			return nil, usageError(err)
		}
	}
	if err := checkOTLP(o.otlp); err != nil {
		return nil, err
	}
	for gi, g := range spec.Agents {
		for range g.Count {
			id := fmt.Sprintf("agent-%02d", len(p.agents)+1)
			p.agents = append(p.agents, demur.AgentEntry{ID: id, Backend: g.Backend, Model: backends.Model(g), SelfCritique: g.SelfCritique})
			p.groups = append(p.groups, gi)
		}
	}
	return p, nil
}

// jobPolicy resolves the router policy for the job's task type: the flag's
// file, else the spec's, else the shipped default; "none" turns refusal
// management off. The spec's policy values override the file's.
func jobPolicy(spec *job.Spec, flag string) (*policy.Policy, error) {
	file := flag
	if file == "" {
		file = spec.Policy.File
	}
	var pol policy.Policy
	switch file {
	case "none":
		pol = *policy.None()
	case "":
		pol = *policy.DefaultFile().Rules(spec.TaskType)
	default:
		f, err := policy.Load(file)
		if err != nil {
			return nil, err
		}
		pol = *f.Rules(spec.TaskType)
	}
	if v := spec.Policy.RetireAfter; v > 0 {
		pol.RetireAfter = v
	}
	if v := spec.Policy.MaxAttempts; v > 0 {
		pol.MaxAttempts = v
	}
	if v := spec.Policy.MinConfidence; v > 0 {
		pol.MinConfidence = v
	}
	return &pol, nil
}

// serveUI serves the dashboard and the override API during a run; approved
// overrides reach the coordinator over the job's embedded bus. With an SLA
// spec it checks the objectives as `demur serve --sla` does, more often,
// since a run is short.
func serveUI(ctx context.Context, addr string, store demur.Store, bus demur.Bus, pol *policy.Policy, spec *sla.Spec, stderr io.Writer) (stop func(), err error) {
	svc, err := override.New(ctx, override.Options{Store: store, Bus: bus,
		Requirements: func(_ string, a demur.Action) (demur.OperatorRole, int) {
			r, ok := pol.Overrides[a]
			if !ok {
				return "", 0
			}
			return r.Role, r.Approvals
		}})
	if err != nil {
		return nil, fmt.Errorf("override service: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageError(fmt.Errorf("--ui %s: %w", addr, err))
	}
	wopts := web.Options{Addr: addr, Overrides: svc}
	var extra []prometheus.Collector
	stopSLA := func() {}
	if spec != nil {
		logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		var c prometheus.Collector
		c, stopSLA = withSLA(ctx, store, logger, spec, runSLAInterval, &wopts)
		extra = append(extra, c)
	}
	wopts, stopFeed, err := withDashboard(ctx, store, nil, wopts, extra...)
	if err != nil {
		stopSLA()
		ln.Close()
		return nil, err
	}
	srv := web.NewServer(wopts)
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintf(stderr, "demur: serving the dashboard and override API on http://%s\n", ln.Addr())
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		stopFeed()
		stopSLA()
	}, nil
}

// agentHazard adapts the job's monitor to one agent's hazard model.
type agentHazard struct {
	m     *monitor.Monitor
	agent string
}

func (h agentHazard) Observe(v demur.Verdict) float64 { return h.m.Observe(h.agent, v.Signals) }

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
	// Records go through the audit log, which signs a checkpoint every
	// audit.DefaultEvery records of the job (docs/audit.md).
	alog, err := openAuditLog(store, p.storeURL, p.out)
	if err != nil {
		return err
	}
	var bus *natsbus.Bus
	var dist *distCoordinator // distributed mode: agents live in `demur agent` workers
	if o.nats.url == "" {
		if bus, err = natsbus.Embedded(ctx, natsbus.EmbeddedOptions{}); err != nil {
			return fmt.Errorf("start bus: %w", err)
		}
		defer bus.Close()
	} else {
		if dist, err = startDistributed(ctx, &o.nats, p, store, stderr); err != nil {
			return err
		}
		defer dist.close()
		bus = dist.bus
	}

	tasks := coord.Plan(p.spec)
	jobID := p.spec.JobID()
	show := newProgress(stderr, !o.json, p, len(tasks))
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	agentErrs := func() error { return nil }
	var spawn func(id, model string) error // fallback agents run locally only
	runCtx := ctx
	if dist == nil {
		pool, err := startAgents(agentCtx, p, jobID, bus)
		if err != nil {
			return usageError(err)
		}
		agentErrs, spawn = pool.wait, pool.spawn
	} else {
		runCtx = dist.ctx
	}

	det := refusal.New()
	mon := monitor.New()
	pol := p.policy
	pending, err := override.Load(ctx, store, jobID)
	if err != nil {
		return fmt.Errorf("load overrides: %w", err)
	}
	if o.ui != "" {
		stopUI, err := serveUI(ctx, o.ui, store, bus, pol, p.sla, stderr)
		if err != nil {
			return err
		}
		defer stopUI()
	}
	// With tracing on, the coordinator writes through a store that hands
	// each durable record to the tracer; what the log already holds (a
	// resumed job) is folded first, so that open spans end right.
	var cstore demur.Store = alog
	tracer, stopTracing, err := startTracing(ctx, o.otlp, stderr, otel.Options{})
	if err != nil {
		return err
	}
	defer stopTracing()
	traceID := ""
	if tracer != nil {
		if err := tracer.Prime(ctx, store, jobID); err != nil {
			return err
		}
		cstore, traceID = tracer.Store(alog), otel.JobTraceID(jobID).String()
		fmt.Fprintf(stderr, "demur: job %s is trace %s\n", jobID, traceID)
	}
	c := coord.New(coord.Config{
		Job: jobID, Spec: p.specData, Seed: p.spec.Seed, Tasks: tasks, Agents: p.agents,
		Bus: dist.coordBus(bus), Store: cstore, Policy: pol, Overrides: pending,
		OnEvent:     func(e coord.Event) { show.event(e); dist.event(e) },
		NewDetector: func(string) demur.Detector { return refusal.NewStream(det, 8) },
		NewMonitor:  func(agent string) coord.HazardModel { return agentHazard{mon, agent} },
		Spawn:       spawn,
		OnOverrideApplied: func(ov demur.Override) {
			if err := override.RecordApplied(ctx, store, "coordinator", ov); err != nil {
				fmt.Fprintf(stderr, "demur: record override %s applied: %v\n", ov.ID, err)
			}
		},
	})
	_, runErr := c.Run(runCtx)
	if dist != nil {
		runErr = dist.finish(runErr)
	}
	stopAgents()
	agErr := agentErrs()
	show.close()
	if runErr != nil {
		if ctx.Err() != nil {
			return problemError(fmt.Errorf("interrupted; run the same command again to resume job %s from %s", jobID, p.storeURL))
		}
		return fmt.Errorf("run job %s: %w", jobID, errors.Join(runErr, agErr))
	}
	// A final checkpoint signs the job's last records, job.end included.
	if err := alog.Checkpoint(ctx, jobID); err != nil {
		return fmt.Errorf("checkpoint job %s: %w", jobID, err)
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
		Turns: rp.Turns, Lost: rp.Lost, Words: rp.Words, WordsPerSecond: float64(rp.Words) / el, ElapsedSeconds: el,
		TraceID: traceID,
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

// agentPool runs a job's local agents, one goroutine each.
type agentPool struct {
	ctx   context.Context
	p     *plannedJob
	jobID string
	bus   demur.Bus
	wg    sync.WaitGroup
	mu    sync.Mutex
	errs  []error
}

// startAgents builds every agent's backend, then runs them all; a backend
// that cannot be built stops the job before any agent starts.
func startAgents(ctx context.Context, p *plannedJob, jobID string, bus demur.Bus) (*agentPool, error) {
	ap := &agentPool{ctx: ctx, p: p, jobID: jobID, bus: bus}
	agents := make([]*coord.Agent, len(p.agents))
	for i, a := range p.agents {
		ag, err := ap.agent(a.ID, p.spec.Agents[p.groups[i]], a.Model)
		if err != nil {
			return nil, err
		}
		agents[i] = ag
	}
	for _, ag := range agents {
		ap.run(ag)
	}
	return ap, nil
}

func (ap *agentPool) agent(id string, g job.AgentGroup, model string) (*coord.Agent, error) {
	b, err := backends.New(ap.ctx, g, id, ap.p.spec.Seed)
	if err != nil {
		return nil, err
	}
	// Direct: this process's coordinator listens for results on the turn subject.
	return &coord.Agent{ID: id, Job: ap.jobID, Agents: len(ap.p.agents), Model: model, Bus: ap.bus, Logprobs: true, Backend: b, Direct: true, HandOff: true}, nil
}

func (ap *agentPool) run(ag *coord.Agent) {
	ap.wg.Add(1)
	go func() {
		defer ap.wg.Done()
		if err := ag.Run(ap.ctx); err != nil {
			ap.mu.Lock()
			ap.errs = append(ap.errs, err)
			ap.mu.Unlock()
		}
	}()
}

// spawn starts an agent on the policy's fallback model mid-job, on the
// backend of the job's first agent group.
func (ap *agentPool) spawn(id, model string) error {
	g := ap.p.spec.Agents[0]
	g.Profile, g.Model = model, model
	ag, err := ap.agent(id, g, model)
	if err != nil {
		return err
	}
	ap.run(ag)
	return nil
}

// wait waits for every agent and joins their errors.
func (ap *agentPool) wait() error {
	ap.wg.Wait()
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return errors.Join(ap.errs...)
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
	fmt.Fprintf(w, "work lost to refusals and redos: %d turns, %d tokens, %.1fs of backend time\n", s.Lost.Turns, s.Lost.Tokens, s.Lost.Seconds)
	if n := len(s.Missing); n > 0 {
		shown := s.Missing[:min(n, 12)]
		more := ""
		if n > len(shown) {
			more = fmt.Sprintf(" … and %d more (--json lists all)", n-len(shown))
		}
		fmt.Fprintf(w, "missing sections (%d): %s%s\n", n, strings.Join(shown, ", "), more)
	}
	if s.Document != "" {
		fmt.Fprintf(w, "document: %s\nstore:    %s\n", s.Document, s.Store)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
