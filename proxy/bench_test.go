//go:build unix

package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/demurhq/demur/sqlite"
)

// body1K is a 1 KB non-streaming Chat Completions response.
var body1K = func() []byte {
	text := strings.Repeat("Reservoirs hold a town's water through the dry months, and their keepers watch the level every day. ", 9)
	b, _ := json.Marshal(map[string]any{"id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench-model",
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text, "refusal": nil},
			"finish_reason": "stop", "logprobs": nil}},
		"usage": map[string]any{"prompt_tokens": 40, "completion_tokens": 180, "total_tokens": 220}})
	return b
}()

var benchReq = []byte(`{"model":"bench-model","messages":[{"role":"system","content":"You write sections."},{"role":"user","content":"Write about reservoirs in about 150 words."}]}`)

// load sends n requests to url at rate per second, open loop (each request
// has a scheduled start, whatever happened to the ones before), and
// returns the sorted latencies.
func load(b *testing.B, client *http.Client, url string, n, rate int) []time.Duration {
	b.Helper()
	lat := make([]time.Duration, n)
	sched := make(chan int, n)
	var wg sync.WaitGroup
	var failed sync.Once
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range sched {
				at := start0.Add(time.Duration(i) * time.Second / time.Duration(rate))
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				// Count from the send, not from the schedule: a sleep's
				// overshoot is the load generator's, not the path's. With 64
				// senders for ~1 request in flight, a stall of the path
				// still shows, in the requests it holds up.
				sent := time.Now()
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(benchReq))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer sk-bench")
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Do(func() { b.Errorf("request %d: %v", i, err) })
				}
				lat[i] = time.Since(sent)
			}
		}()
	}
	start0 = time.Now().Add(10 * time.Millisecond)
	for i := range n {
		sched <- i
	}
	close(sched)
	wg.Wait()
	slices.Sort(lat)
	return lat
}

var start0 time.Time

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func pct(l []time.Duration, p float64) time.Duration { return l[min(len(l)-1, int(float64(len(l))*p))] }

// BenchmarkProxyOverhead measures the latency demur proxy adds over going
// straight to a loopback upstream: 1 KB non-streaming responses at 1,000
// requests/s, observe mode, with the SQLite audit store on. b.N is the
// number of requests per phase (direct, then through the proxy), e.g.
//
//	go test ./proxy -run '^$' -bench BenchmarkProxyOverhead -benchtime 10000x
//
// It reports the percentiles of each phase and their differences.
func BenchmarkProxyOverhead(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body1K)))
		w.Write(body1K)
	}))
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
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	client := &http.Client{Transport: tr}
	const rate = 1000
	n := max(b.N, 200)
	// Warm both paths (connections, detector pools, SQLite pages).
	load(b, client, up.URL+"/v1/chat/completions", 200, rate)
	load(b, client, px.URL+"/v1/chat/completions", 200, rate)
	b.ResetTimer()
	c0 := cpuTime()
	direct := load(b, client, up.URL+"/v1/chat/completions", n, rate)
	c1 := cpuTime()
	proxied := load(b, client, px.URL+"/v1/chat/completions", n, rate)
	px.Close()
	if err := srv.Close(); err != nil { // drains the audit queue: its cost counts
		b.Fatal(err)
	}
	c2 := cpuTime()
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(pct(direct, 0.5)), "direct-p50-µs")
	b.ReportMetric(us(pct(direct, 0.99)), "direct-p99-µs")
	b.ReportMetric(us(pct(proxied, 0.5)), "proxy-p50-µs")
	b.ReportMetric(us(pct(proxied, 0.99)), "proxy-p99-µs")
	b.ReportMetric(us(pct(proxied, 0.5)-pct(direct, 0.5)), "added-p50-µs")
	b.ReportMetric(us(pct(proxied, 0.99)-pct(direct, 0.99)), "added-p99-µs")
	// CPU time is what the proxy costs whatever else the machine runs; on
	// a shared, loaded machine latency percentiles mostly measure the
	// neighbours.
	b.ReportMetric(us((c2-c1)-(c1-c0))/float64(n), "added-cpu-µs/req")
	b.ReportMetric(float64(srv.AuditQueueMax()), "max-audit-queue")
	b.ReportMetric(0, "ns/op")
}
