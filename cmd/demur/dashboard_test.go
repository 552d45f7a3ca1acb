package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/coord"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/override"
	"github.com/demurhq/demur/storeurl"
)

// chromiumBin finds the browser: $DEMUR_CHROMIUM, else Debian's chromium.
func chromiumBin() string {
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

// lockedBuffer is a bytes.Buffer safe for the job's writes and the test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newBrowser starts a headless Chromium with a fresh profile for the test.
func newBrowser(t *testing.T, bin string) context.Context {
	t.Helper()
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	t.Cleanup(cancel)
	bctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	bctx, cancel = context.WithTimeout(bctx, 40*time.Second)
	t.Cleanup(cancel)
	return bctx
}

var uiAddrRE = regexp.MustCompile(`serving the dashboard and override API on (http://\S+)`)

// uiRun is a `demur run --ui` running in this process.
type uiRun struct {
	base   string // the dashboard's URL
	stderr lockedBuffer
	exited chan int
}

// startUIRun runs demur with args and `--ui 127.0.0.1:0`, and returns once
// the run serves its dashboard.
func startUIRun(t *testing.T, args ...string) *uiRun {
	t.Helper()
	r := &uiRun{exited: make(chan int, 1)}
	go func() {
		var stdout lockedBuffer
		r.exited <- execute(append(args, "--ui", "127.0.0.1:0"), &stdout, &r.stderr)
	}()
	for deadline := time.Now().Add(15 * time.Second); r.base == ""; time.Sleep(20 * time.Millisecond) {
		if m := uiAddrRE.FindStringSubmatch(r.stderr.String()); m != nil {
			r.base = m[1]
		}
		select {
		case code := <-r.exited:
			t.Fatalf("run exited %d before serving\n%s", code, r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no serving line\n%s", r.stderr.String())
		}
	}
	return r
}

// wait waits up to d for the run to end, with its job completed or not.
func (r *uiRun) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case code := <-r.exited:
		if code != exitOK && code != exitProblem {
			t.Fatalf("run exit %d\n%s", code, r.stderr.String())
		}
	case <-time.After(d):
		t.Fatalf("the run did not end within %v once released", d)
	}
}

// TestDashboardLiveOverride is the dashboard's end-to-end test in a real
// headless Chromium: `demur run --ui` on a job whose chaos injects refusals;
// the page, loaded from the embedded server, shows a refusal live; an
// operator pastes a token and pauses an agent from the page; the audit log
// records the request and the coordinator applying it; a viewer's token is
// refused with 403 on the page. The upstream paces the job (its requests
// block after a few turns until the test lets more through) so that
// refusals are written while the page watches and the override lands in a
// running job, whatever the machine's speed.
func TestDashboardLiveOverride(t *testing.T) {
	bin := chromiumBin()
	if bin == "" {
		t.Skip("chromium not installed (apt-get install -y chromium); skipping the dashboard browser test")
	}
	if testing.Short() {
		t.Skip("short mode")
	}
	// The upstream answers 6 calls, then 10 more once the page is up (so
	// that refusals are written while it watches), then the rest on
	// release.
	more, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	var calls atomic.Int64
	up := fakeupstream.New(func(r *fakeupstream.Request) fakeupstream.Reply {
		n := calls.Add(1)
		if n > 6 {
			select {
			case <-more:
			case <-release:
			}
		}
		if n > 16 {
			<-release
		}
		return fakeupstream.Reply{Text: prose(rand.New(rand.NewPCG(uint64(n), 7)), 220), Logprob: -0.8}
	})
	defer up.Close()
	defer free() // before Close, which waits for the blocked handlers

	dir := t.TempDir()
	store := "sqlite://" + filepath.Join(dir, "demur.db")
	ctx := context.Background()
	st, err := storeurl.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tokens := override.NewTokens(st, nil)
	operator, _, err := tokens.Issue(ctx, "test", "olga", demur.RoleOperator, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	viewer, _, err := tokens.Issue(ctx, "test", "vic", demur.RoleViewer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := writeOpenAIJob(t, dir, openAIJob{name: "dashboard", seed: 5, chapters: 4, sections: 5, agents: 3,
		model: "experimental-70b", url: up.URL, retries: 1, timeout: "60s", chaos: "{refusal_rate: 0.3, refusals: [text_refusal]}"})
	run := startUIRun(t, "run", path, "--out", filepath.Join(dir, "out"), "--store", store)
	base := run.base

	bctx := newBrowser(t, bin)

	// The refusal must arrive live: the page is loaded while the job runs,
	// and the first refusal row is built from the SSE stream or the
	// snapshot its "hello" triggers.
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#refusals li"))); err != nil {
		t.Fatalf("no refusal on the page: %v\nrun: %s", err, run.stderr.String())
	}
	jobID, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("job").value`))
	if err != nil || jobID == "" {
		t.Fatalf("no job selected: %q %v", jobID, err)
	}
	// Refusals written from now on must reach the open page over SSE.
	count := func() int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#refusals li").length`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	close(more)
	for deadline := time.Now().Add(15 * time.Second); count() <= before; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			recs, _ := st.Records(ctx, demur.Query{Stream: jobID, Kinds: []demur.RecordKind{demur.RecVerdict}})
			t.Fatalf("no new refusal reached the page (%d rows; %d upstream calls, %d verdicts in the log)", before, calls.Load(), len(recs))
		}
	}
	if ups, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.demurStats.updates`)); err != nil || ups == 0 {
		t.Fatalf("no SSE update reached the page: %d %v", ups, err)
	}

	waitText := func(sel, want string) string {
		t.Helper()
		var got string
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var err error
			got, err = chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("`+sel+`").textContent`))
			if err != nil {
				t.Fatalf("read %s: %v", sel, err)
			}
			if strings.Contains(got, want) {
				return got
			}
		}
		t.Fatalf("%s: %q never contained %q", sel, got, want)
		return ""
	}
	submit := func(secret, reason string) {
		t.Helper()
		_, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.getElementById("ov-result").textContent = ""; true`))
		if err != nil {
			t.Fatal(err)
		}
		err = chromedp.Do(bctx,
			chromedp.SetValue(chromedp.CSS("#token"), secret),
			chromedp.SetValue(chromedp.CSS("#ov-action"), "pause"),
			chromedp.SetValue(chromedp.CSS("#ov-agent"), "agent-02"),
			chromedp.SetValue(chromedp.CSS("#ov-reason"), reason),
			chromedp.Click(chromedp.CSS("#ov-submit")))
		if err != nil {
			t.Fatalf("submit the override form: %v", err)
		}
	}

	submit(operator, "dashboard e2e: pause agent-02")
	res := waitText("#ov-result", "201")
	if !strings.Contains(res, "approved") {
		t.Fatalf("operator's override: %q", res)
	}
	// The coordinator applies it and the page shows that, from the log.
	waitText("#summary", "overrides 1")
	// Click agent-02's cell (the second) to show its curve and state.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => { const c = document.getElementById("grid"), r = c.getBoundingClientRect(), s = window.demurStats.cell;
		c.dispatchEvent(new MouseEvent("click", {clientX: r.left + 1.5 * s, clientY: r.top + 0.5 * s, bubbles: true})); return true })()`)); err != nil {
		t.Fatal(err)
	}
	waitText("#agent-info", "agent-02")
	waitText("#agent-info", "paused")
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	submit(viewer, "dashboard e2e: a viewer tries")
	waitText("#ov-result", "refused 403")

	free()
	run.wait(t, 30*time.Second)

	// The audit log has the operator's request, the coordinator applying
	// it, and the viewer's refusal.
	recs, err := st.Records(ctx, demur.Query{Stream: override.Stream, Kinds: []demur.RecordKind{demur.RecOverride}})
	if err != nil {
		t.Fatal(err)
	}
	var approved, refused bool
	for _, r := range recs {
		var a override.Attempt
		if err := json.Unmarshal(r.Payload, &a); err != nil {
			t.Fatal(err)
		}
		switch {
		case a.Endpoint == "request" && a.Actor == "olga" && a.Outcome == override.OutcomeApproved && a.Agent == "agent-02" && a.Action == demur.ActionPause:
			approved = true
		case a.Endpoint == "request" && a.Actor == "vic" && a.HTTPStatus == 403 && strings.HasPrefix(a.Outcome, override.OutcomeRejectedPrefix):
			refused = true
		}
	}
	if !approved || !refused {
		t.Fatalf("override log: operator approved %v, viewer refused %v (%d records)", approved, refused, len(recs))
	}
	jrecs, err := st.Records(ctx, demur.Query{Stream: jobID, Kinds: []demur.RecordKind{demur.RecOverride}})
	if err != nil {
		t.Fatal(err)
	}
	applied := false
	for _, r := range jrecs {
		var p coord.OverridePayload
		if json.Unmarshal(r.Payload, &p) == nil && p.Outcome == demur.OverrideApplied && p.Override.Agent == "agent-02" {
			applied = true
		}
	}
	if !applied {
		t.Fatalf("job %s: no applied pause in the log (%d override records)", jobID, len(jrecs))
	}
}
