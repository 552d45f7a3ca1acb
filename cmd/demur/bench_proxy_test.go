package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestBenchProxy runs the load command on the real binary, which starts
// its own `demur proxy` process, and checks the report against itself and
// the audit log it counted.
func TestBenchProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a proxy process and sends ~500 requests; skipped with -short")
	}
	bin := buildBinary(t)
	cmd := exec.Command(bin, "bench", "proxy", "--requests", "400", "--rate", "400", "--rounds", "4", "--warmup", "50", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("demur bench proxy: %v\nstderr: %s", err, stderr.String())
	}
	var r proxyBenchResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
	}
	if r.Requests != 400 || r.Rate != 400 || r.Sent != 450 || r.AuditedTurns != r.Sent {
		t.Errorf("requests %d, rate %d, sent %d, audited %d; want 400, 400, 450, 450", r.Requests, r.Rate, r.Sent, r.AuditedTurns)
	}
	for name, p := range map[string][2]float64{"direct": {r.DirectP50us, r.DirectP99us},
		"passthrough": {r.PassthroughP50us, r.PassthroughP99us}, "proxy": {r.ProxyP50us, r.ProxyP99us}} {
		if p[0] <= 0 || p[1] < p[0] {
			t.Errorf("%s percentiles p50 %.0f µs, p99 %.0f µs: want 0 < p50 ≤ p99", name, p[0], p[1])
		}
	}
	if r.AddedP50us != r.ProxyP50us-r.DirectP50us || r.OverPassthroughP99us != r.ProxyP99us-r.PassthroughP99us {
		t.Errorf("differences do not add up: %+v", r)
	}
	// The proxy decodes, classifies and records every request: that is
	// not free, and a figure of zero would mean the CPU was not measured.
	if r.ProxyCPUus <= 0 || r.PassthroughCPUus <= 0 {
		t.Errorf("CPU per request: proxy %.1f µs, passthrough %.1f µs; want both > 0", r.ProxyCPUus, r.PassthroughCPUus)
	}
}

func TestBenchProxyUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := execute([]string{"bench", "proxy", "--rounds", "0"}, &out, &errb); code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr %s", code, exitUsage, errb.String())
	}
	if !strings.Contains(errb.String(), "--rounds") {
		t.Errorf("error does not name the flag: %s", errb.String())
	}
}
