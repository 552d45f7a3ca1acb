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
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur/chaos"
	"github.com/demurhq/demur/internal/llmhttp"
	"github.com/demurhq/demur/otel"
	"github.com/demurhq/demur/policy"
	"github.com/demurhq/demur/proxy"
	"github.com/demurhq/demur/storeurl"
)

func init() { addCommand(newProxyCmd) }

// proxyGCPercent is demur proxy's GOGC unless the environment sets one.
const proxyGCPercent = 500

type proxyOptions struct {
	listen, upstream, anthropicUpstream string
	policyFile, store, mode, job        string
	maxBody                             string
	fallbackModel                       string
	maxRetries                          int
	keyEnv, keyFile                     string
	anthropicKeyEnv, anthropicKeyFile   string
	routes                              []string
	chaosRefusalRate, chaosFaultRate    float64
	chaosSeed                           int64
	chaosRefusals, chaosFaults          []string
	chaosRetryAfter, chaosHang          time.Duration
	chaosAfterTokens                    int64
	json                                bool
	otlp                                string
	// ready, when set (tests), gets the listening address.
	ready func(addr string)
}

func newProxyCmd() *cobra.Command {
	var o proxyOptions
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the OpenAI/Anthropic-compatible gateway",
		Long: `Run demur's drop-in gateway. Point any framework's OpenAI base URL at
http://LISTEN/v1 (or its Anthropic base URL at http://LISTEN): every response is
classified, decided on and recorded; in enforce mode a refusal may be retried
with a reframe or a fallback model before the client sees it. The client's own
API key passes through unless --api-key-env/--api-key-file configure one.
See docs/proxy.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProxy(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8787", "address to listen on")
	f.StringVar(&o.upstream, "upstream", "https://api.openai.com/v1", "OpenAI-compatible upstream, including /v1")
	f.StringVar(&o.anthropicUpstream, "anthropic-upstream", "https://api.anthropic.com", "Anthropic upstream, without /v1 (empty disables /v1/messages)")
	f.StringVar(&o.policyFile, "policy", "", "router policy file (docs/policy.md); default: the proxy's built-in policy")
	f.StringVar(&o.store, "store", "sqlite://out/proxy/demur.db", "audit store URL (sqlite://PATH, postgres://…)")
	f.StringVar(&o.mode, "mode", "observe", "observe (pass responses unchanged) or enforce (act on decisions)")
	f.StringVar(&o.job, "job", "", "audit job name (default proxy-YYYYMMDD; X-Demur-Job overrides per request)")
	f.StringVar(&o.maxBody, "max-body", "32MiB", "largest request body accepted (bytes, or with KiB/MiB/GiB); larger gets 413")
	f.StringVar(&o.fallbackModel, "fallback-model", "", "model that rotate/reassign decisions switch to in enforce mode")
	f.IntVar(&o.maxRetries, "max-retries", 2, "extra upstream calls enforce mode may make for one request")
	f.StringVar(&o.keyEnv, "api-key-env", "", "environment variable holding the OpenAI-side key to use instead of the client's")
	f.StringVar(&o.keyFile, "api-key-file", "", "file holding the OpenAI-side key to use instead of the client's")
	f.StringVar(&o.anthropicKeyEnv, "anthropic-api-key-env", "", "environment variable holding the Anthropic key to use instead of the client's")
	f.StringVar(&o.anthropicKeyFile, "anthropic-api-key-file", "", "file holding the Anthropic key to use instead of the client's")
	f.StringArrayVar(&o.routes, "route", nil, "NAME=TASK_TYPE[,AGENT]: requests under /r/NAME/ take this task type and agent (repeatable)")
	f.Float64Var(&o.chaosRefusalRate, "chaos-refusal-rate", 0, "chaos mode: share of responses turned into injected refusals")
	f.Float64Var(&o.chaosFaultRate, "chaos-fault-rate", 0, "chaos mode: share of requests answered with an injected transport fault")
	f.Int64Var(&o.chaosSeed, "chaos-seed", 1, "chaos mode: seed (injections are deterministic per seed and agent)")
	f.StringSliceVar(&o.chaosRefusals, "chaos-refusals", nil, "chaos mode: refusal kinds to draw from (default all)")
	f.StringSliceVar(&o.chaosFaults, "chaos-faults", nil, "chaos mode: fault kinds to draw from (default all)")
	f.DurationVar(&o.chaosRetryAfter, "chaos-retry-after", time.Second, "chaos mode: the Retry-After of an injected 429")
	f.Int64Var(&o.chaosAfterTokens, "chaos-after-tokens", 0, "chaos mode: inject by rate only once an agent has produced this many output tokens")
	f.DurationVar(&o.chaosHang, "chaos-hang", 0, "chaos mode: how long an injected timeout stalls before its 504")
	f.BoolVar(&o.json, "json", false, "print the startup and shutdown lines as JSON objects")
	registerOTLP(f, &o.otlp)
	return cmd
}

// proxyStatus is the --json output, once at start and once at shutdown.
type proxyStatus struct {
	Event             string `json:"event"` // "listening" or "stopped"
	Listen            string `json:"listen"`
	Mode              string `json:"mode"`
	Upstream          string `json:"upstream"`
	AnthropicUpstream string `json:"anthropic_upstream,omitempty"`
	Store             string `json:"store"`
	Job               string `json:"job"`
	Policy            string `json:"policy"`
	Chaos             bool   `json:"chaos"`
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

// proxyConfig checks the flags and builds everything that needs no I/O
// beyond reading key and policy files.
func proxyConfig(o proxyOptions) (proxy.Config, string, error) {
	cfg := proxy.Config{Upstream: o.upstream, AnthropicUpstream: o.anthropicUpstream, Mode: proxy.Mode(o.mode), Job: o.job,
		FallbackModel: o.fallbackModel, MaxRetries: o.maxRetries}
	if cfg.Mode != proxy.ModeObserve && cfg.Mode != proxy.ModeEnforce {
		return cfg, "", fmt.Errorf("--mode %q: want observe or enforce", o.mode)
	}
	var err error
	if cfg.MaxBody, err = parseSize(o.maxBody); err != nil {
		return cfg, "", fmt.Errorf("--max-body: %w", err)
	}
	if o.maxRetries < 0 {
		return cfg, "", fmt.Errorf("--max-retries must be ≥ 0")
	}
	if cfg.OpenAIKey, err = llmhttp.LoadKey(o.keyEnv, o.keyFile); err != nil {
		return cfg, "", fmt.Errorf("--api-key-file: %w", err)
	}
	if o.keyEnv != "" && cfg.OpenAIKey.Empty() {
		return cfg, "", fmt.Errorf("--api-key-env %s is not set", o.keyEnv)
	}
	if cfg.AnthropicKey, err = llmhttp.LoadKey(o.anthropicKeyEnv, o.anthropicKeyFile); err != nil {
		return cfg, "", fmt.Errorf("--anthropic-api-key-file: %w", err)
	}
	if o.anthropicKeyEnv != "" && cfg.AnthropicKey.Empty() {
		return cfg, "", fmt.Errorf("--anthropic-api-key-env %s is not set", o.anthropicKeyEnv)
	}
	policyName := "built-in (proxy default)"
	if o.policyFile != "" {
		if cfg.Policies, err = policy.Load(o.policyFile); err != nil {
			return cfg, "", err
		}
		policyName = o.policyFile
	}
	for _, r := range o.routes {
		name, rest, ok := strings.Cut(r, "=")
		tt, agent, _ := strings.Cut(rest, ",")
		if !ok || name == "" || strings.Contains(name, "/") || tt == "" {
			return cfg, "", fmt.Errorf("--route %q: want NAME=TASK_TYPE[,AGENT]", r)
		}
		if cfg.Routes == nil {
			cfg.Routes = map[string]proxy.Route{}
		}
		cfg.Routes[name] = proxy.Route{TaskType: tt, Agent: agent}
	}
	if o.chaosRefusalRate > 0 || o.chaosFaultRate > 0 {
		cc := &chaos.Config{Seed: o.chaosSeed, RefusalRate: o.chaosRefusalRate, FaultRate: o.chaosFaultRate,
			RetryAfter: o.chaosRetryAfter, Hang: o.chaosHang, AfterTokens: o.chaosAfterTokens}
		for _, s := range o.chaosRefusals {
			k, err := chaos.ParseKind(s)
			if err != nil {
				return cfg, "", fmt.Errorf("--chaos-refusals: %w", err)
			}
			cc.Refusals = append(cc.Refusals, k)
		}
		for _, s := range o.chaosFaults {
			k, err := chaos.ParseKind(s)
			if err != nil {
				return cfg, "", fmt.Errorf("--chaos-faults: %w", err)
			}
			cc.Faults = append(cc.Faults, k)
		}
		if err := cc.Validate(); err != nil {
			return cfg, "", fmt.Errorf("chaos: %w", err)
		}
		cfg.Chaos = cc
	}
	if !knownScheme(o.store) {
		return cfg, "", fmt.Errorf("--store %q: want one of %s", o.store, strings.Join(storeurl.Schemes, ", "))
	}
	return cfg, policyName, nil
}

func runProxy(ctx context.Context, o proxyOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, policyName, err := proxyConfig(o)
	if err != nil {
		return usageError(err)
	}
	if err := checkOTLP(o.otlp); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The proxy's live heap is small (~6 MB), so Go's default target
	// collects every ~200 ms at 1,000 requests/s, and each collection takes
	// CPU from requests in flight: it shows in the p99. A fivefold target
	// makes collections fivefold rarer for ~25 MB.
	raiseGCTarget(proxyGCPercent)
	if path, ok := strings.CutPrefix(o.store, "sqlite://"); ok {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("create store directory: %w", err)
		}
	}
	store, err := storeurl.Open(ctx, o.store)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()
	cfg.Store = store
	// Deferred before the server exists, the tracer's stop runs after
	// srv.Close has flushed the audit queue through it.
	tracer, stopTracing, err := startTracing(ctx, o.otlp, stderr, otel.Options{ObserveOnly: cfg.Mode != proxy.ModeEnforce})
	if err != nil {
		return err
	}
	defer stopTracing()
	if tracer != nil {
		cfg.Store = tracer.Store(store)
		// Upstream calls carry the context of the chat span they become,
		// so an upstream that traces nests its spans under demur's.
		cfg.Traceparent = tracer.UpstreamTraceparent
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := proxy.New(cfg)
	if err != nil {
		return usageError(err)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	st := proxyStatus{Event: "listening", Listen: ln.Addr().String(), Mode: string(cfg.Mode), Upstream: cfg.Upstream,
		AnthropicUpstream: cfg.AnthropicUpstream, Store: o.store, Job: srv.Job(), Policy: policyName, Chaos: cfg.Chaos != nil}
	printProxyStatus(stdout, o.json, st)
	if o.ready != nil {
		o.ready(st.Listen)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	shutErr := hs.Shutdown(sctx)
	// Only now is no handler left to queue a record: flush the audit log.
	closeErr := srv.Close()
	st.Event = "stopped"
	printProxyStatus(stdout, o.json, st)
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	if err := errors.Join(serveErr, shutErr, closeErr); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	return nil
}

func printProxyStatus(w io.Writer, asJSON bool, st proxyStatus) {
	if asJSON {
		json.NewEncoder(w).Encode(st)
		return
	}
	if st.Event == "stopped" {
		fmt.Fprintf(w, "demur proxy: stopped; audit log flushed to %s (job %s)\n", st.Store, st.Job)
		return
	}
	fmt.Fprintf(w, "demur proxy: listening on http://%s (mode %s)\n", st.Listen, st.Mode)
	fmt.Fprintf(w, "  OpenAI-compatible:    http://%s/v1  ->  %s\n", st.Listen, st.Upstream)
	if st.AnthropicUpstream != "" {
		fmt.Fprintf(w, "  Anthropic-compatible: http://%s     ->  %s\n", st.Listen, st.AnthropicUpstream)
	}
	fmt.Fprintf(w, "  store %s, job %s, policy %s", st.Store, st.Job, st.Policy)
	if st.Chaos {
		fmt.Fprint(w, ", chaos on")
	}
	fmt.Fprintln(w)
}
