// Package loadgen drives an HTTP endpoint open loop at a fixed rate and
// measures each request's latency: the load of the proxy benchmarks (`go
// test -bench ProxyOverhead ./proxy` and `demur bench proxy`).
//
// Open loop means each request has a scheduled start whatever happened to
// the ones before, so a stall of the path shows in the requests it holds
// up instead of slowing the load down (coordinated omission).
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config is one phase of load.
type Config struct {
	// URL receives every request, a POST of Body with Header.
	URL    string
	Body   []byte
	Header http.Header
	// Requests is how many to send, Rate how many per second.
	Requests, Rate int
	// Senders is how many requests may be in flight at once (default 64).
	Senders int
	// Client sends the requests (default: a client that keeps up to
	// Senders connections alive).
	Client *http.Client
}

// Result is a phase's latencies.
type Result struct {
	// Latencies are sorted, one per request, counted from the send (not
	// from the schedule: a late wake-up of the generator is its own, not
	// the path's).
	Latencies []time.Duration
	// Errors counts requests that failed or answered other than 200;
	// Err is the first.
	Errors int
	Err    error
}

// Percentile returns the latency at p (0..1), or 0 with no requests.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[min(len(r.Latencies)-1, int(float64(len(r.Latencies))*p))]
}

// NewClient returns a client that keeps n idle connections per host, so
// that no request of a phase pays for a dial.
func NewClient(n int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = n, n
	return &http.Client{Transport: tr}
}

// Run sends cfg.Requests requests at cfg.Rate per second and returns their
// latencies. It stops early, with what it has, when ctx ends.
func Run(ctx context.Context, cfg Config) Result {
	if cfg.Senders <= 0 {
		cfg.Senders = 64
	}
	if cfg.Client == nil {
		cfg.Client = NewClient(cfg.Senders)
	}
	lat := make([]time.Duration, cfg.Requests)
	sched := make(chan int, cfg.Requests)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		res   Result
		start = time.Now().Add(10 * time.Millisecond)
	)
	for range cfg.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range sched {
				if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(cfg.Rate))); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
				sent := time.Now()
				err := send(ctx, cfg)
				lat[i] = time.Since(sent)
				if err != nil {
					mu.Lock()
					if res.Errors++; res.Err == nil {
						res.Err = fmt.Errorf("request %d: %w", i, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range cfg.Requests {
		sched <- i
	}
	close(sched)
	wg.Wait()
	slices.Sort(lat)
	res.Latencies = lat
	return res
}

func send(ctx context.Context, cfg Config) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(cfg.Body))
	if err != nil {
		return err
	}
	for k, vs := range cfg.Header {
		req.Header[k] = vs
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// ChatRequest is the benchmark's request: a short Chat Completions call.
var ChatRequest = []byte(`{"model":"bench-model","messages":[{"role":"system","content":"You write sections."},{"role":"user","content":"Write about reservoirs in about 150 words."}]}`)

// ChatHeader is the benchmark request's header.
func ChatHeader() http.Header {
	return http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer sk-bench"}}
}

// ChatResponse is a 1 KB non-streaming Chat Completions response, a
// compliant answer.
var ChatResponse = func() []byte {
	text := strings.Repeat("Reservoirs hold a town's water through the dry months, and their keepers watch the level every day. ", 9)
	b, err := json.Marshal(map[string]any{"id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench-model",
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text, "refusal": nil},
			"finish_reason": "stop", "logprobs": nil}},
		"usage": map[string]any{"prompt_tokens": 40, "completion_tokens": 180, "total_tokens": 220}})
	if err != nil {
		panic(err)
	}
	return b
}()

// Upstream answers every request with ChatResponse, as fast as loopback
// allows: the reference the proxy's added latency is measured against.
func Upstream() http.Handler {
	n := strconv.Itoa(len(ChatResponse))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", n)
		w.Write(ChatResponse)
	})
}
