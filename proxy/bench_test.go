//go:build unix

package proxy

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/demurhq/demur/internal/loadgen"
	"github.com/demurhq/demur/sqlite"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProxyOverhead measures the latency demur proxy adds over going
// straight to a loopback upstream: 1 KB non-streaming responses at 1,000
// requests/s, observe mode, with the SQLite audit store on. b.N is the
// number of requests per phase (direct, then through the proxy), e.g.
//
//	go test ./proxy -run '^$' -bench BenchmarkProxyOverhead -benchtime 10000x
//
// The load generator, the upstream and the proxy share this process (and
// its two Ps on a 2-core machine), which makes this the pessimistic
// figure; `demur bench proxy` runs the proxy as its own process, as it is
// deployed.
func BenchmarkProxyOverhead(b *testing.B) {
	up := httptest.NewServer(loadgen.Upstream())
	defer up.Close()
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cfg := Config{Upstream: up.URL + "/v1", Store: st, Job: "proxy-bench"}
	if os.Getenv("DEMUR_BENCH_NO_STORE") != "" {
		cfg.Store = nil // diagnostic only: what the audit log costs
	}
	srv, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	px := httptest.NewServer(srv)
	defer px.Close()
	client := loadgen.NewClient(256)
	const rate = 1000
	n := max(b.N, 200)
	phase := func(url string, n int) loadgen.Result {
		r := loadgen.Run(context.Background(), loadgen.Config{URL: url + "/v1/chat/completions", Body: loadgen.ChatRequest,
			Header: loadgen.ChatHeader(), Requests: n, Rate: rate, Client: client})
		if r.Err != nil {
			b.Fatalf("%d errors, first: %v", r.Errors, r.Err)
		}
		return r
	}
	// Warm both paths (connections, detector pools, SQLite pages).
	phase(up.URL, 200)
	phase(px.URL, 200)
	b.ResetTimer()
	c0 := cpuTime()
	direct := phase(up.URL, n)
	c1 := cpuTime()
	proxied := phase(px.URL, n)
	px.Close()
	if err := srv.Close(); err != nil { // drains the audit queue: its cost counts
		b.Fatal(err)
	}
	c2 := cpuTime()
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(direct.Percentile(0.5)), "direct-p50-µs")
	b.ReportMetric(us(direct.Percentile(0.99)), "direct-p99-µs")
	b.ReportMetric(us(proxied.Percentile(0.5)), "proxy-p50-µs")
	b.ReportMetric(us(proxied.Percentile(0.99)), "proxy-p99-µs")
	b.ReportMetric(us(proxied.Percentile(0.5)-direct.Percentile(0.5)), "added-p50-µs")
	b.ReportMetric(us(proxied.Percentile(0.99)-direct.Percentile(0.99)), "added-p99-µs")
	// CPU time is what the proxy costs whatever else the machine runs; on
	// a shared, loaded machine latency percentiles mostly measure the
	// neighbours.
	b.ReportMetric(us((c2-c1)-(c1-c0))/float64(n), "added-cpu-µs/req")
	b.ReportMetric(float64(srv.AuditQueueMax()), "max-audit-queue")
	b.ReportMetric(0, "ns/op")
}
