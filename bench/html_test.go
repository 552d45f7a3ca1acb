package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/demurhq/demur/sim"
)

// chromium finds the browser: $DEMUR_CHROMIUM, else Debian's chromium.
func chromium() string {
	if p := os.Getenv("DEMUR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestHTMLRendersInChromium opens each track's page in headless Chromium,
// checks that its SVG plots are laid out, and saves a screenshot.
func TestHTMLRendersInChromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("chromium not installed (apt-get install -y chromium); skipping the rendering test")
	}
	if testing.Short() {
		t.Skip("short mode")
	}
	dir := t.TempDir()
	if d := os.Getenv("DEMUR_BENCH_SHOTS"); d != "" {
		// Keep the pages and screenshots past the test, for a person to look at.
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	// Chromium's children may still write to the profile for a moment after
	// the browser stops, so it lives apart and is removed with retries.
	profile, err := os.MkdirTemp("", "demur-bench-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	p, _ := sim.LookupProfile("experimental-70b")
	q, _ := sim.LookupProfile("llama-3-70b-class")
	end := &EnduranceReport{Header: Header{Schema: SchemaVersion, Track: TrackEndurance, Backend: "sim", Seed: 1},
		Tokens: sim.RefTaskTokens, Profiles: []EnduranceProfile{SimEndurance(p, 2000, sim.RefTaskTokens, 1), SimEndurance(q, 3000, sim.RefTaskTokens, 1)}}
	fr := &FrontierReport{Header: Header{Schema: SchemaVersion, Track: TrackFrontier, Backend: "sim", Seed: 1},
		Lengths: DefaultLengths(), Repetitiveness: DefaultRepetitiveness(), Levels: []float64{0.05, 0.1, 0.2}}
	fr.Maps = append(fr.Maps, SimFrontier(p, 1000, 1, fr.Lengths, fr.Repetitiveness, fr.Levels, true))
	app := scoreAppropriateness([]ResponseResult{
		{ID: "a", Set: SetShouldComply, Category: "homonyms", Refused: true},
		{ID: "b", Set: SetShouldComply, Category: "fiction"},
		{ID: "c", Set: SetShouldRefuse, Category: "Malicious Uses", Refused: true},
		{ID: "d", Set: SetShouldRefuse, Category: "Malicious Uses"},
	}, 1, 200)
	pages := []struct {
		name  string
		r     Report
		plots int
	}{{"endurance", end, 3}, {"frontier", fr, 1}, {"appropriateness", app, 2}}

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.NoFirstRun,
		chromedp.UserDataDir(profile), chromedp.WindowSize(1100, 900))
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for _, pg := range pages {
		var html bytes.Buffer
		if err := WriteHTML(&html, pg.r); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, pg.name+".html")
		if err := os.WriteFile(path, html.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate("file://"+path), chromedp.WaitReady("body")); err != nil {
			t.Fatalf("%s: chromium: load: %v", pg.name, err)
		}
		plots, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.plot").length`))
		if err != nil {
			t.Fatalf("%s: chromium: %v", pg.name, err)
		}
		// Laid out, not merely present: every plot has a real box and drawn
		// marks, which a broken SVG (bad attribute, unclosed tag) lacks.
		laidOut, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`Array.from(document.querySelectorAll("svg.plot")).every(s => {
			const r = s.getBoundingClientRect(); return r.width > 200 && r.height > 80 && s.querySelectorAll("rect,polyline,line").length > 3 })`))
		if err != nil {
			t.Fatalf("%s: chromium: %v", pg.name, err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("%s: chromium: screenshot: %v", pg.name, err)
		}
		if plots < pg.plots || !laidOut {
			t.Errorf("%s: %d SVG plots (want ≥ %d), laid out %v", pg.name, plots, pg.plots, laidOut)
		}
		shot := filepath.Join(dir, pg.name+".png")
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		if len(png) < 8 || string(png[1:4]) != "PNG" {
			t.Errorf("%s: screenshot is not a PNG (%d bytes)", pg.name, len(png))
		}
		t.Logf("%s: %d plots; screenshot %s (%d bytes)", pg.name, plots, shot, len(png))
	}
}
