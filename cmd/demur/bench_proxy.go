package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/loadgen"
	"github.com/demurhq/demur/storeurl"
)

type benchProxyOptions struct {
	requests, rate, rounds, warmup int
	store, proxyProfile            string
	procs                          int
	json                           bool
}

func newBenchProxyCmd() *cobra.Command {
	var o benchProxyOptions
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "The gateway's added latency and CPU over a loopback upstream",
		Long: `Measure what demur proxy adds to a request. A loopback upstream answers
every Chat Completions call with the same 1 KB response; demur proxy runs as
its own process in observe mode with its audit store on, as it is deployed;
a bare Go reverse proxy (no decoding, no detector, no log) runs as another,
the baseline of what any process in the way costs on this machine. An
open-loop load generator sends --rate requests/s straight to the upstream
and through each proxy, in alternating rounds so that all three paths see
the same machine. It reports their latency percentiles, the differences,
each proxy process's CPU per request, and checks that the audit log holds
every request's turn. See docs/proxy.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchProxy(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.requests, "requests", 10000, "requests per path")
	f.IntVar(&o.rate, "rate", 1000, "requests per second")
	f.IntVar(&o.rounds, "rounds", 10, "alternating rounds the requests are split into")
	f.IntVar(&o.warmup, "warmup", 500, "requests per path before measuring")
	f.StringVar(&o.store, "store", "", "the proxy's audit store URL (default: SQLite in a temporary directory)")
	f.BoolVar(&o.json, "json", false, "print one JSON object")
	f.StringVar(&o.proxyProfile, "proxy-cpuprofile", "", "write the proxy process's CPU profile to this file")
	f.IntVar(&o.procs, "proxy-gomaxprocs", 0, "GOMAXPROCS of the proxy process (default: the Go runtime's)")
	return cmd
}

// proxyBenchResult is the outcome of `demur bench proxy`. Latencies are in
// µs; "added" is demur's path less the direct one, "over passthrough"
// demur's less a bare Go reverse proxy's (the cost of the extra process
// hop itself on this machine).
type proxyBenchResult struct {
	Requests             int     `json:"requests"`
	Rate                 int     `json:"rate"`
	DirectP50us          float64 `json:"direct_p50_us"`
	DirectP99us          float64 `json:"direct_p99_us"`
	PassthroughP50us     float64 `json:"passthrough_p50_us"`
	PassthroughP99us     float64 `json:"passthrough_p99_us"`
	ProxyP50us           float64 `json:"proxy_p50_us"`
	ProxyP99us           float64 `json:"proxy_p99_us"`
	AddedP50us           float64 `json:"added_p50_us"`
	AddedP99us           float64 `json:"added_p99_us"`
	OverPassthroughP50us float64 `json:"over_passthrough_p50_us"`
	OverPassthroughP99us float64 `json:"over_passthrough_p99_us"`
	ProxyCPUus           float64 `json:"proxy_cpu_us_per_request"`
	PassthroughCPUus     float64 `json:"passthrough_cpu_us_per_request"`
	AuditedTurns         int     `json:"audited_turns"`
	Sent                 int     `json:"sent"` // through demur proxy, warm-up included
	Store                string  `json:"store"`
}

// benchPath is one way to the upstream: straight, through a bare reverse
// proxy, or through demur proxy.
type benchPath struct {
	url   string
	child *child // the process in the way, if any
	lat   []time.Duration
	cpu0  time.Duration
}

func runBenchProxy(ctx context.Context, o benchProxyOptions, w io.Writer) error {
	if o.requests < o.rounds || o.rounds < 1 || o.rate < 1 || o.warmup < 0 {
		return usageError(errors.New("bench proxy: want --rate ≥ 1, --rounds ≥ 1, --requests ≥ --rounds and --warmup ≥ 0"))
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if o.store == "" {
		dir, err := os.MkdirTemp("", "demur-bench-proxy-")
		if err != nil {
			return fmt.Errorf("bench proxy: %w", err)
		}
		defer os.RemoveAll(dir)
		o.store = "sqlite://" + filepath.Join(dir, "audit.db")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench proxy: upstream: %w", err)
	}
	up := &http.Server{Handler: loadgen.Upstream()}
	go up.Serve(ln)
	defer up.Close()
	upURL := "http://" + ln.Addr().String()

	const job = "bench-proxy"
	var env []string
	if o.procs > 0 {
		env = []string{fmt.Sprintf("GOMAXPROCS=%d", o.procs)}
	}
	args := []string{"proxy", "--listen", "127.0.0.1:0", "--upstream", upURL + "/v1",
		"--anthropic-upstream", "", "--store", o.store, "--job", job, "--json"}
	if o.proxyProfile != "" {
		args = append(args, "--cpuprofile", o.proxyProfile)
	}
	demurPath, passPath, direct := &benchPath{}, &benchPath{}, &benchPath{url: upURL}
	if demurPath.child, err = startChild(ctx, "demur proxy", args, env); err != nil {
		return err
	}
	defer demurPath.child.kill()
	if passPath.child, err = startChild(ctx, "passthrough", []string{"bench", "passthrough", "--upstream", upURL}, env); err != nil {
		return err
	}
	defer passPath.child.kill()
	demurPath.url, passPath.url = demurPath.child.url, passPath.child.url
	paths := []*benchPath{direct, passPath, demurPath}

	client := loadgen.NewClient(256)
	phase := func(base string, n int) ([]time.Duration, error) {
		r := loadgen.Run(ctx, loadgen.Config{URL: base + "/v1/chat/completions", Body: loadgen.ChatRequest,
			Header: loadgen.ChatHeader(), Requests: n, Rate: o.rate, Client: client})
		if r.Err != nil {
			return nil, fmt.Errorf("bench proxy: %s: %d of %d requests failed, first: %w", base, r.Errors, n, r.Err)
		}
		return r.Latencies, ctx.Err()
	}
	for _, p := range paths {
		if _, err := phase(p.url, o.warmup); err != nil {
			return err
		}
		if p.child != nil {
			if p.cpu0, err = procCPU(p.child.cmd.Process.Pid); err != nil {
				return fmt.Errorf("bench proxy: %w", err)
			}
		}
	}
	res := proxyBenchResult{Requests: o.requests, Rate: o.rate, Store: o.store, Sent: o.warmup}
	// Alternating rounds give every path the same machine, whatever else
	// it runs meanwhile.
	for i := range o.rounds {
		n := o.requests / o.rounds
		if i < o.requests%o.rounds {
			n++
		}
		for _, p := range paths {
			lat, err := phase(p.url, n)
			if err != nil {
				return err
			}
			p.lat = append(p.lat, lat...)
		}
		res.Sent += n
	}
	// Stopping demur proxy flushes its audit queue: that work is part of
	// what the requests cost.
	for _, c := range []struct {
		p   *benchPath
		out *float64
	}{{demurPath, &res.ProxyCPUus}, {passPath, &res.PassthroughCPUus}} {
		cpu, err := c.p.child.stop()
		if err != nil {
			return err
		}
		*c.out = float64(cpu-c.p.cpu0) / float64(time.Microsecond) / float64(o.requests)
	}
	us := func(x time.Duration) float64 { return float64(x) / float64(time.Microsecond) }
	pct := func(p *benchPath, q float64) float64 {
		slices.Sort(p.lat)
		return us(loadgen.Result{Latencies: p.lat}.Percentile(q))
	}
	res.DirectP50us, res.DirectP99us = pct(direct, 0.5), pct(direct, 0.99)
	res.PassthroughP50us, res.PassthroughP99us = pct(passPath, 0.5), pct(passPath, 0.99)
	res.ProxyP50us, res.ProxyP99us = pct(demurPath, 0.5), pct(demurPath, 0.99)
	res.AddedP50us, res.AddedP99us = res.ProxyP50us-res.DirectP50us, res.ProxyP99us-res.DirectP99us
	res.OverPassthroughP50us, res.OverPassthroughP99us = res.ProxyP50us-res.PassthroughP50us, res.ProxyP99us-res.PassthroughP99us
	if res.AuditedTurns, err = countTurns(ctx, o.store, job); err != nil {
		return err
	}
	if res.AuditedTurns != res.Sent {
		return fmt.Errorf("bench proxy: the audit log holds %d turns of job %s, want one per request (%d)", res.AuditedTurns, job, res.Sent)
	}
	return printBenchProxy(w, o.json, res)
}

func printBenchProxy(w io.Writer, asJSON bool, r proxyBenchResult) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	fmt.Fprintf(w, "demur bench proxy: %d requests per path at %d/s, 1 KB responses, observe mode, store %s\n\n", r.Requests, r.Rate, r.Store)
	fmt.Fprintf(w, "| path | p50 µs | p99 µs | CPU µs/request |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(w, "| direct to upstream | %.0f | %.0f | |\n", r.DirectP50us, r.DirectP99us)
	fmt.Fprintf(w, "| bare Go reverse proxy (own process) | %.0f | %.0f | %.0f |\n", r.PassthroughP50us, r.PassthroughP99us, r.PassthroughCPUus)
	fmt.Fprintf(w, "| demur proxy (own process) | %.0f | %.0f | %.0f |\n", r.ProxyP50us, r.ProxyP99us, r.ProxyCPUus)
	fmt.Fprintf(w, "| **added by demur proxy** | **%.0f** | **%.0f** | |\n", r.AddedP50us, r.AddedP99us)
	fmt.Fprintf(w, "| demur proxy over the bare proxy | %.0f | %.0f | |\n\n", r.OverPassthroughP50us, r.OverPassthroughP99us)
	fmt.Fprintf(w, "audit log: %d/%d turns recorded (CPU includes the audit flush)\n", r.AuditedTurns, r.Sent)
	return nil
}

// child is a demur process the benchmark started: demur proxy or the
// passthrough baseline.
type child struct {
	name string
	cmd  *exec.Cmd
	url  string
	done chan error
}

// startChild runs this executable with args (plus env) and waits for the
// JSON "listening" line a proxy prints.
func startChild(ctx context.Context, name string, args, env []string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench proxy: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench proxy: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench proxy: start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan error, 1)}
	lines := bufio.NewScanner(out)
	ready := make(chan string, 1)
	go func() {
		for lines.Scan() {
			var st proxyStatus
			if json.Unmarshal(lines.Bytes(), &st) == nil && st.Event == "listening" {
				ready <- st.Listen
			}
		}
		c.done <- cmd.Wait()
	}()
	select {
	case addr := <-ready:
		c.url = "http://" + addr
		return c, nil
	case err := <-c.done:
		return nil, fmt.Errorf("bench proxy: %s exited before listening: %v", name, err)
	case <-time.After(30 * time.Second):
		c.kill()
		return nil, fmt.Errorf("bench proxy: %s did not listen within 30s", name)
	case <-ctx.Done():
		c.kill()
		return nil, ctx.Err()
	}
}

// stop asks the child to shut down and returns its CPU time over its
// whole life.
func (c *child) stop() (time.Duration, error) {
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("bench proxy: stop %s: %w", c.name, err)
	}
	if err := <-c.done; err != nil {
		return 0, fmt.Errorf("bench proxy: %s: %w", c.name, err)
	}
	return c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime(), nil
}

func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
	}
}

// procCPU is a running process's user+system CPU time so far, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read the proxy's CPU time (Linux only): %w", err)
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %q", pid, s)
	}
	var ticks int64
	for _, x := range f[11:13] {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// countTurns counts the turn records of job in the store at url.
func countTurns(ctx context.Context, url, job string) (int, error) {
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("bench proxy: open the audit store: %w", err)
	}
	defer st.Close()
	recs, err := st.Records(ctx, demur.Query{Job: job})
	if err != nil {
		return 0, fmt.Errorf("bench proxy: read the audit log: %w", err)
	}
	n := 0
	for _, r := range recs {
		if r.Kind == demur.RecTurn {
			n++
		}
	}
	return n, nil
}

// newBenchPassthroughCmd is the baseline process of `bench proxy`: a bare
// Go reverse proxy (net/http/httputil) with the same connection pooling
// as demur proxy, which decodes, classifies and records nothing. What it
// adds is the cost of any proxy process on the machine.
func newBenchPassthroughCmd() *cobra.Command {
	var listen, upstream string
	cmd := &cobra.Command{
		Use:    "passthrough",
		Short:  "A bare reverse proxy: the baseline of bench proxy",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPassthrough(cmd.Context(), listen, upstream, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	cmd.Flags().StringVar(&upstream, "upstream", "", "upstream base URL")
	return cmd
}

func runPassthrough(ctx context.Context, listen, upstream string, w io.Writer) error {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return usageError(fmt.Errorf("--upstream %q: want an http://host:port URL", upstream))
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 1024
	rp.Transport = tr
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second}
	json.NewEncoder(w).Encode(proxyStatus{Event: "listening", Listen: ln.Addr().String(), Upstream: upstream})
	go func() {
		<-ctx.Done()
		hs.Shutdown(context.Background())
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
