package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/natsbus"
	"github.com/demurhq/demur/otel"
	"github.com/demurhq/demur/override"
	"github.com/demurhq/demur/policy"
	"github.com/demurhq/demur/sla"
	"github.com/demurhq/demur/web"
)

func init() { addCommand(newServeCmd) }

// traceFollowInterval is how often `demur serve --otlp` reads what running
// jobs appended.
const traceFollowInterval = 2 * time.Second

type serveOptions struct {
	policy string
	store  string
	listen string
	nats   string
	sla    string
	otlp   string
}

// policyRequirements answers the override service from a policy file: the
// role and approvals an action needs on a job come from the overrides
// section of the job's task type, read from the job's first record.
func policyRequirements(ctx context.Context, store demur.Store, pf *policy.File) override.Requirements {
	var mu sync.Mutex
	types := map[string]string{}
	return func(job string, a demur.Action) (demur.OperatorRole, int) {
		mu.Lock()
		t, ok := types[job]
		mu.Unlock()
		if !ok {
			t = jobTaskType(ctx, store, job)
			mu.Lock()
			types[job] = t
			mu.Unlock()
		}
		return pf.OverrideRule(t, a)
	}
}

// jobTaskType is the task type a job's job.start record declares, "" when
// the job is unknown (its overrides then follow the policy's "other" rules).
func jobTaskType(ctx context.Context, store demur.Store, job string) string {
	recs, err := store.Records(ctx, demur.Query{Job: job, Stream: job, Kinds: []demur.RecordKind{demur.RecJobStart}, Limit: 1})
	if err != nil || len(recs) == 0 {
		return ""
	}
	var p demur.JobStartPayload
	if json.Unmarshal(recs[0].Payload, &p) != nil {
		return ""
	}
	return p.TaskType
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the dashboard and the override API over a store",
		Long: `Serve the HTTP API over a store: the live dashboard at / (docs/dashboard.md)
with its read-only feed (/api/events, /api/jobs), and the override API
(POST /api/overrides, POST /api/overrides/{id}/approve, GET /api/overrides),
authenticated by tokens from "demur token issue". Approved overrides are
recorded in the store, where a coordinator finds them, and with --nats also
broadcast on the job's control subject demur.control.JOB.

Serve plain HTTP on loopback only; put a TLS-terminating proxy in front of
it for anything else, since bearer tokens must not cross a network in clear.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "", "store URL (default $"+storeEnv+")")
	f.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&o.nats, "nats", "", "NATS URL to broadcast approved overrides on (optional)")
	f.StringVar(&o.policy, "policy", "", "router policy file whose overrides section says who may request which override (default: the shipped policy)")
	f.StringVar(&o.sla, "sla", "", "SLA file: check it every 30s, alert its webhook, show it on the dashboard and /metrics (optional)")
	registerOTLP(f, &o.otlp)
	return cmd
}

// runServe serves until ctx ends, then shuts down gracefully. It prints the
// address it listens on, so that a caller who asked for port 0 learns it.
func runServe(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if err := checkOTLP(o.otlp); err != nil {
		return err
	}
	store, err := openNamedStore(ctx, o.store)
	if err != nil {
		return err
	}
	defer store.Close()
	// With tracing on, serve exports the spans of what running jobs
	// append to the store from now on (docs/tracing.md).
	tracer, stopTracing, err := startTracing(ctx, o.otlp, stderr, otel.Options{})
	if err != nil {
		return err
	}
	defer stopTracing()
	if tracer != nil {
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			tracer.Follow(fctx, store, traceFollowInterval, func(err error) { logger.Warn("trace", "err", err) })
		}()
		defer func() { cancel(); <-done }()
	}
	pf := policy.DefaultFile()
	if o.policy != "" {
		if pf, err = policy.Load(o.policy); err != nil {
			return usageError(err)
		}
	}
	opts := override.Options{Store: store, Logger: logger, Requirements: policyRequirements(ctx, store, pf)}
	if o.nats != "" {
		bus, err := natsbus.Connect(ctx, o.nats, natsbus.ConnectOptions{Name: "demur-serve"})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer bus.Close()
		opts.Bus = bus
	}
	opts.OnApproved = func(ov demur.Override) {
		logger.Info("override approved", "id", ov.ID, "job", ov.Job, "action", ov.Action, "requester", ov.Requester)
	}
	svc, err := override.New(ctx, opts)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return usageError(fmt.Errorf("serve: listen on %s: %w", o.listen, err))
	}
	wopts := web.Options{Addr: ln.Addr().String(), Overrides: svc}
	var extra []prometheus.Collector
	if o.sla != "" {
		spec, err := sla.Load(o.sla)
		if err != nil {
			ln.Close()
			return usageError(err)
		}
		c, stopSLA := withSLA(ctx, store, logger, spec, slaInterval, &wopts)
		defer stopSLA()
		extra = append(extra, c)
	}
	wopts, stopFeed, err := withDashboard(ctx, store, logger, wopts, extra...)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopFeed()
	srv := web.NewServer(wopts)
	srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	fmt.Fprintf(stdout, "demur serve: listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	return nil
}
