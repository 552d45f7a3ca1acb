package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/demurhq/demur/sla"
)

// TestServeSLA: `demur serve --sla` shows the objectives' status at
// /api/sla (the dashboard's SLA panel) and their burn rates in /metrics.
func TestServeSLA(t *testing.T) {
	store := runSmallJob(t, "  - {count: 3, backend: sim, profile: experimental-70b, chaos: {refusal_rate: 0.5, refusals: [text_refusal]}}", "--policy", "none")
	file := filepath.Join(t.TempDir(), "sla.yaml")
	if err := os.WriteFile(file, []byte("objectives: [{name: refusals, sli: refusal_rate, max: 0.02}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, serveOptions{store: store, listen: "127.0.0.1:0", sla: file}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	_, base, _ := strings.Cut(strings.TrimSpace(line), "listening on ")

	var statuses []sla.Status
	for deadline := time.Now().Add(10 * time.Second); len(statuses) == 0; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/api/sla")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&statuses)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no SLA status")
		}
	}
	if s := statuses[0]; s.Objective.Name != "refusals" || s.Bad == 0 || len(s.Firing) == 0 {
		t.Fatalf("status %+v", s)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`demur_sla_burn_rate{objective="refusals",sli="refusal_rate",window="1h"}`, `demur_sla_alerts_firing{objective="refusals",severity="page"} 2`, "demur_refusals_total{"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
