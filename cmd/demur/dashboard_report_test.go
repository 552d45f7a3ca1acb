package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReportHTML writes a job's HTML report and checks it is
// self-contained (no script, no external resource), that its SVG charts
// are well-formed XML, and that it holds the study's table, every refusal,
// the decisions and the SLA.
func TestReportHTML(t *testing.T) {
	store := runSmallJob(t, "  - {count: 3, backend: sim, profile: experimental-70b, chaos: {refusal_rate: 0.5, refusals: [text_refusal, partial_refusal]}}", "--policy", "none")
	dir := t.TempDir()
	file := filepath.Join(dir, "sla.yaml")
	if err := os.WriteFile(file, []byte("objectives: [{name: refusals, sli: refusal_rate, max: 0.02}]\ncredits: [{below: 0.99, percent: 10}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "report.html")
	if d := os.Getenv("DEMUR_REPORT_HTML"); d != "" {
		page = d // keep the page to look at
	}
	var stdout, stderr bytes.Buffer
	if code := execute([]string{"report", "sla-4", "--store", store, "--html", page, "--sla", file}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "job sla-4") {
		t.Errorf("the text report is gone:\n%s", stdout.String())
	}
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	if strings.Contains(doc, "<script") || regexp.MustCompile(`(src|href)="?(https?:)?//`).MatchString(doc) {
		t.Error("the page loads something from elsewhere")
	}
	svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(doc, -1)
	if len(svgs) != 3 {
		t.Fatalf("%d charts, want 3", len(svgs))
	}
	for i, s := range svgs {
		d := xml.NewDecoder(strings.NewReader(s))
		for {
			if _, err := d.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("chart %d is not well-formed: %v", i, err)
			}
		}
	}
	rp, err := loadReport(t.Context(), store, "sla-4")
	if err != nil {
		t.Fatal(err)
	}
	refusals := 0
	for _, a := range rp.Agents {
		refusals += a.Refusals
		if !strings.Contains(doc, "<td class=\"l\">"+a.ID+"</td>") {
			t.Errorf("the study's table lacks %s", a.ID)
		}
	}
	if refusals == 0 {
		t.Fatal("the job has no refusals; the test needs some")
	}
	if got := strings.Count(doc, "<td class=\"l\">injected</td>"); got != refusals {
		t.Errorf("%d refusal rows, the log has %d", got, refusals)
	}
	for _, want := range []string{"The study's table", "Refusal timeline", "Router decisions by action", "credit: 10%", "cumulative output tokens"} {
		if !strings.Contains(doc, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// --sla alone is for the HTML page.
	if code := execute([]string{"report", "--store", store, "--sla", file}, &stdout, &stderr); code != exitUsage {
		t.Errorf("--sla without --html: exit %d", code)
	}
}
