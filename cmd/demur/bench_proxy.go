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
	"os"
	"os/exec"
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
an open-loop load generator sends --rate requests/s straight to the upstream
and through the proxy, in alternating rounds so that both see the same
machine. It reports the latency percentiles of both paths, their difference,
the proxy process's CPU per request, and checks that the audit log holds
every request's turn.`,
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
	return cmd
}

// proxyBenchResult is the outcome of `demur bench proxy`.
type proxyBenchResult struct {
	Requests     int     `json:"requests"`
	Rate         int     `json:"rate"`
	DirectP50us  float64 `json:"direct_p50_us"`
	DirectP99us  float64 `json:"direct_p99_us"`
	ProxyP50us   float64 `json:"proxy_p50_us"`
	ProxyP99us   float64 `json:"proxy_p99_us"`
	AddedP50us   float64 `json:"added_p50_us"`
	AddedP99us   float64 `json:"added_p99_us"`
	ProxyCPUus   float64 `json:"proxy_cpu_us_per_request"`
	AuditedTurns int     `json:"audited_turns"`
	Sent         int     `json:"sent"` // through the proxy, warm-up included
	Store        string  `json:"store"`
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
	px, err := startProxy(ctx, upURL+"/v1", o.store, job, o.proxyProfile)
	if err != nil {
		return err
	}
	defer px.kill()

	client := loadgen.NewClient(256)
	phase := func(base string, n int) (loadgen.Result, error) {
		r := loadgen.Run(ctx, loadgen.Config{URL: base + "/v1/chat/completions", Body: loadgen.ChatRequest,
			Header: loadgen.ChatHeader(), Requests: n, Rate: o.rate, Client: client})
		if r.Err != nil {
			return r, fmt.Errorf("bench proxy: %s: %d of %d requests failed, first: %w", base, r.Errors, n, r.Err)
		}
		return r, ctx.Err()
	}
	res := proxyBenchResult{Requests: o.requests, Rate: o.rate, Store: o.store}
	for _, base := range []string{upURL, px.url} {
		if _, err := phase(base, o.warmup); err != nil {
			return err
		}
	}
	res.Sent = o.warmup
	cpu0, err := procCPU(px.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("bench proxy: %w", err)
	}
	var direct, proxied []time.Duration
	for i := range o.rounds {
		n := o.requests / o.rounds
		if i < o.requests%o.rounds {
			n++
		}
		d, err := phase(upURL, n)
		if err != nil {
			return err
		}
		p, err := phase(px.url, n)
		if err != nil {
			return err
		}
		direct, proxied = append(direct, d.Latencies...), append(proxied, p.Latencies...)
		res.Sent += n
	}
	// Stopping the proxy flushes its audit queue: that work is part of
	// what the requests cost.
	cpu1, err := px.stop()
	if err != nil {
		return err
	}
	res.ProxyCPUus = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(o.requests)
	d, p := sorted(direct), sorted(proxied)
	us := func(x time.Duration) float64 { return float64(x) / float64(time.Microsecond) }
	res.DirectP50us, res.DirectP99us = us(d.Percentile(0.5)), us(d.Percentile(0.99))
	res.ProxyP50us, res.ProxyP99us = us(p.Percentile(0.5)), us(p.Percentile(0.99))
	res.AddedP50us, res.AddedP99us = res.ProxyP50us-res.DirectP50us, res.ProxyP99us-res.DirectP99us
	if res.AuditedTurns, err = countTurns(ctx, o.store, job); err != nil {
		return err
	}
	if res.AuditedTurns != res.Sent {
		return fmt.Errorf("bench proxy: the audit log holds %d turns of job %s, want one per request (%d)", res.AuditedTurns, job, res.Sent)
	}
	return printBenchProxy(w, o.json, res)
}

func sorted(l []time.Duration) loadgen.Result {
	slices.Sort(l)
	return loadgen.Result{Latencies: l}
}

func printBenchProxy(w io.Writer, asJSON bool, r proxyBenchResult) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	fmt.Fprintf(w, "demur bench proxy: %d requests per path at %d/s, 1 KB responses, observe mode, store %s\n\n", r.Requests, r.Rate, r.Store)
	fmt.Fprintf(w, "| path | p50 µs | p99 µs |\n|---|---:|---:|\n")
	fmt.Fprintf(w, "| direct to upstream | %.0f | %.0f |\n", r.DirectP50us, r.DirectP99us)
	fmt.Fprintf(w, "| through demur proxy | %.0f | %.0f |\n", r.ProxyP50us, r.ProxyP99us)
	fmt.Fprintf(w, "| **added by the proxy** | **%.0f** | **%.0f** |\n\n", r.AddedP50us, r.AddedP99us)
	fmt.Fprintf(w, "proxy CPU: %.0f µs per request (audit flush included); audit log: %d/%d turns recorded\n", r.ProxyCPUus, r.AuditedTurns, r.Sent)
	return nil
}

// proxyProc is a `demur proxy` child process.
type proxyProc struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

// startProxy runs this executable's proxy subcommand on a free loopback
// port and waits for it to listen.
func startProxy(ctx context.Context, upstream, store, job, profile string) (*proxyProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench proxy: %w", err)
	}
	args := []string{"proxy", "--listen", "127.0.0.1:0", "--upstream", upstream,
		"--anthropic-upstream", "", "--store", store, "--job", job, "--json"}
	if profile != "" {
		args = append(args, "--cpuprofile", profile)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench proxy: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench proxy: start demur proxy: %w", err)
	}
	p := &proxyProc{cmd: cmd, done: make(chan error, 1)}
	lines := bufio.NewScanner(out)
	ready := make(chan string, 1)
	go func() {
		for lines.Scan() {
			var st proxyStatus
			if json.Unmarshal(lines.Bytes(), &st) == nil && st.Event == "listening" {
				ready <- st.Listen
			}
		}
		p.done <- cmd.Wait()
	}()
	select {
	case addr := <-ready:
		p.url = "http://" + addr
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("bench proxy: demur proxy exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, errors.New("bench proxy: demur proxy did not listen within 30s")
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
}

// stop asks the proxy to shut down (it flushes its audit queue) and
// returns its CPU time over its whole life.
func (p *proxyProc) stop() (time.Duration, error) {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("bench proxy: stop demur proxy: %w", err)
	}
	if err := <-p.done; err != nil {
		return 0, fmt.Errorf("bench proxy: demur proxy: %w", err)
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime(), nil
}

func (p *proxyProc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
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
