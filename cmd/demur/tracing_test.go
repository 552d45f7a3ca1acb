package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/otel"
	"github.com/demurhq/demur/storeurl"
)

// otlpCollector is an OTLP/HTTP collector: it decodes the protobuf export
// requests POSTed to /v1/traces and counts spans by operation and trace.
type otlpCollector struct {
	*httptest.Server
	mu      sync.Mutex
	ops     map[string]int
	traces  map[string]int
	service string
	bad     []string
}

func newOTLPCollector(t *testing.T) *otlpCollector {
	t.Helper()
	c := &otlpCollector{ops: map[string]int{}, traces: map[string]int{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			c.bad = append(c.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
			http.Error(w, "want POST /v1/traces in protobuf", http.StatusBadRequest)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(data, &req)
		}
		if err != nil {
			c.bad = append(c.bad, err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					c.service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					c.traces[hex.EncodeToString(s.TraceId)]++
					for _, kv := range s.Attributes {
						if kv.Key == "gen_ai.operation.name" {
							c.ops[kv.GetValue().GetStringValue()]++
						}
					}
				}
			}
		}
		resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(resp)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *otlpCollector) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops[op]
}

// clearOTELEnv keeps the machine's own OpenTelemetry settings out of a
// test.
func clearOTELEnv(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

func writeTracedSpec(t *testing.T, dir string) string {
	t.Helper()
	spec := `name: traced
seed: 3
document:
  title: Traces
  chapters: 2
  sections_per_chapter: 4
  words_per_section: 150
agents:
  - {count: 3, backend: sim, profile: experimental-70b, chaos: {refusal_rate: 0.3, refusals: [anthropic_refusal]}}
policy: {file: %s, retire_after: 1000, max_attempts: 40}
`
	// The shipped ladder ends in escalate, which would wait for a person.
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(`version: 1
defaults:
  on: {refuse: [reframe, refresh_context, reassign], partial: [retry, reassign], degraded: [refresh_context, reassign]}
  escalate: {timeout: 1s, default: reassign}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	spec = fmt.Sprintf(spec, pol)
	path := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func countRecords(t *testing.T, storeURL, job string, kind demur.RecordKind) int {
	t.Helper()
	st, err := storeurl.Open(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Records(context.Background(), demur.Query{Stream: job, Kinds: []demur.RecordKind{kind}})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// TestRunOtlpExport: `demur run --otlp URL` sends the job's trace over
// OTLP/HTTP protobuf before it exits: one trace, the job's, with a chat
// span per turn record in the store and the workflow span that closes it.
func TestRunOtlpExport(t *testing.T) {
	clearOTELEnv(t)
	t.Setenv("OTEL_SERVICE_NAME", "demur-e2e")
	col := newOTLPCollector(t)
	dir := t.TempDir()
	path := writeTracedSpec(t, dir)
	store := "sqlite://" + filepath.Join(dir, "demur.db")
	var stdout, stderr bytes.Buffer
	code := execute([]string{"run", path, "--out", filepath.Join(dir, "out"), "--store", store, "--json", "--otlp", col.URL}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("run exit %d: %s", code, stderr.String())
	}
	var sum runSummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	want := otel.JobTraceID(sum.JobID).String()
	if sum.TraceID != want || !strings.Contains(stderr.String(), "exporting traces over OTLP http/protobuf "+col.URL+"/v1/traces") {
		t.Errorf("trace_id %q (want %s); stderr:\n%s", sum.TraceID, want, stderr.String())
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.bad) > 0 {
		t.Fatalf("collector got bad requests: %v", col.bad)
	}
	turns := countRecords(t, store, sum.JobID, demur.RecTurn)
	if n := col.ops["chat"]; n != turns || n == 0 || n != sum.Turns {
		t.Errorf("collector got %d chat spans; the store has %d turn records, the summary %d turns", n, turns, sum.Turns)
	}
	if col.ops["invoke_workflow"] != 1 || col.ops["apply_guardrail"] != countRecords(t, store, sum.JobID, demur.RecDecision) {
		t.Errorf("collector got %v", col.ops)
	}
	if len(col.traces) != 1 || col.traces[want] == 0 || col.service != "demur-e2e" {
		t.Errorf("traces %v from service %q, want only %s", col.traces, col.service, want)
	}
}

// TestRunOtlpOffAndBadFlag: without --otlp or OTEL_* nothing is exported
// and the summary has no trace; a bad --otlp is bad usage, found before
// anything is written.
func TestRunOtlpOffAndBadFlag(t *testing.T) {
	clearOTELEnv(t)
	dir := t.TempDir()
	path := writeTracedSpec(t, dir)
	var stdout, stderr bytes.Buffer
	out := filepath.Join(dir, "bad")
	if code := execute([]string{"run", path, "--out", out, "--otlp", "collector:4318"}, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "--otlp") {
		t.Fatalf("bad --otlp: exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a bad --otlp created %s", out)
	}
	stdout.Reset()
	stderr.Reset()
	if code := execute([]string{"run", path, "--out", filepath.Join(dir, "out"), "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("run exit %d: %s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), "trace_id") || strings.Contains(stderr.String(), "OTLP") {
		t.Errorf("tracing without being asked:\n%s\n%s", stdout.String(), stderr.String())
	}
}

// TestServeOtlpFollows: `demur serve --otlp` exports the trace of a job
// that runs in another process against its store.
func TestServeOtlpFollows(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	clearOTELEnv(t)
	col := newOTLPCollector(t)
	dir := t.TempDir()
	store := "sqlite://" + filepath.Join(dir, "demur.db")
	st, err := storeurl.Open(context.Background(), store) // create it before serve opens it
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var stderr lockedBuffer
	go func() {
		done <- runServe(ctx, serveOptions{store: store, listen: "127.0.0.1:0", otlp: col.URL}, pw, &stderr)
		pw.Close()
	}()
	if _, err := bufio.NewReader(pr).ReadString('\n'); err != nil {
		t.Fatalf("serve did not start: %v\n%s", err, stderr.String())
	}
	go io.Copy(io.Discard, pr)

	path := writeTracedSpec(t, dir)
	var stdout, runErr bytes.Buffer
	if code := execute([]string{"run", path, "--out", filepath.Join(dir, "out"), "--store", store, "--json"}, &stdout, &runErr); code != exitOK {
		t.Fatalf("run exit %d: %s", code, runErr.String())
	}
	var sum runSummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	turns := countRecords(t, store, sum.JobID, demur.RecTurn)
	for deadline := time.Now().Add(20 * time.Second); col.count("invoke_workflow") == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve exported %v; the job has %d turns\n%s", col.ops, turns, stderr.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := col.count("chat"); n != turns {
		t.Errorf("serve exported %d chat spans; the job has %d turns", n, turns)
	}
}

// TestProxyOtlpJoinsClientTrace: `demur proxy --otlp` exports an exchange
// that came with a W3C traceparent into the client's trace, under the
// client's span, before it exits.
func TestProxyOtlpJoinsClientTrace(t *testing.T) {
	clearOTELEnv(t)
	col := newOTLPCollector(t)
	up := fakeupstream.New(nil)
	defer up.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := proxyOptions{listen: "127.0.0.1:0", upstream: up.URL + "/v1", store: "sqlite://" + filepath.Join(t.TempDir(), "demur.db"),
		mode: "observe", maxBody: "1MiB", maxRetries: 2, otlp: col.URL}
	addr, done, _, stderr := startProxyCmd(ctx, t, o)
	const clientTrace = "0af7651916cd43dd8448eb211c80319c"
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"Say hello to the river."}]}`))
	req.Header.Set("Traceparent", "00-"+clientTrace+"-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if col.ops["chat"] != 1 || col.ops["apply_guardrail"] != 1 || col.traces[clientTrace] != 2 {
		t.Errorf("collector got %v in traces %v\n%s", col.ops, col.traces, stderr.String())
	}
}
