package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/coord"
)

// progress shows a run as it goes: bars per agent on a terminal, plain
// lines for notable events otherwise.
type progress struct {
	w       io.Writer
	bars    map[string]*mpb.Bar
	totals  map[string]int64
	mu      sync.Mutex // guards states, which mpb's goroutine reads
	states  map[string]string
	job     *mpb.Bar
	p       *mpb.Progress
	quiet   bool
	lastPct int
}

func newProgress(w io.Writer, enabled bool, p *plannedJob, sections int) *progress {
	pr := &progress{w: w, quiet: !enabled, states: map[string]string{}}
	f, ok := w.(*os.File)
	if !enabled || !ok || !isatty.IsTerminal(f.Fd()) {
		return pr
	}
	pr.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(32))
	pr.bars = map[string]*mpb.Bar{}
	pr.totals = map[string]int64{}
	share := int64(sections) * int64(p.spec.Document.WordsPerSection) / int64(max(1, len(p.agents)))
	for _, a := range p.agents {
		pr.states[a.ID] = "working"
		pr.totals[a.ID] = share
		pr.bars[a.ID] = pr.p.AddBar(share,
			mpb.PrependDecorators(decor.Name(a.ID, decor.WCSyncSpaceR), decor.Any(pr.stateDecor(a.ID), decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.CountersNoUnit("%d / %d words", decor.WCSyncSpace)),
		)
	}
	pr.job = pr.p.AddBar(int64(sections),
		mpb.PrependDecorators(decor.Name("sections", decor.WCSyncSpaceR), decor.Name("", decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.CountersNoUnit("%d / %d", decor.WCSyncSpace), decor.Elapsed(decor.ET_STYLE_GO, decor.WCSyncSpace)),
	)
	return pr
}

func (pr *progress) stateDecor(id string) decor.DecorFunc {
	return func(decor.Statistics) string {
		pr.mu.Lock()
		defer pr.mu.Unlock()
		return pr.states[id]
	}
}

// event is called on the coordinator's goroutine.
func (pr *progress) event(e coord.Event) {
	if pr.quiet {
		return
	}
	if pr.p == nil {
		pr.line(e)
		return
	}
	switch e.Type {
	case "turn":
		if b := pr.bars[e.Agent]; b != nil {
			if e.Words >= pr.totals[e.Agent] { // a busy agent outgrows its share
				pr.totals[e.Agent] = e.Words + e.Words/4
				b.SetTotal(pr.totals[e.Agent], false)
			}
			b.SetCurrent(e.Words)
		}
		if e.Verdict.IsRefusal() {
			pr.setState(e.Agent, "refused")
		}
		pr.job.SetCurrent(int64(e.Done))
	case "retired":
		pr.setState(e.Agent, "retired")
	}
}

func (pr *progress) setState(id, s string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.states[id] = s
}

// line prints notable events as plain lines, for logs and pipes.
func (pr *progress) line(e coord.Event) {
	switch {
	case e.Type == "turn" && e.Verdict != demur.KindComply:
		fmt.Fprintf(pr.w, "%s %s on %s (%s) at %d tokens → %s\n", e.Agent, e.Verdict, e.Task, orDash(string(e.Reason)), e.Tokens, e.Action)
	case e.Type == "retired":
		fmt.Fprintf(pr.w, "%s retired after %d tokens\n", e.Agent, e.Tokens)
	case e.Type == "turn" && e.Total > 0:
		if pct := 10 * e.Done / e.Total; pct > pr.lastPct {
			pr.lastPct = pct
			fmt.Fprintf(pr.w, "%d%%: %d of %d sections\n", pct*10, e.Done, e.Total)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (pr *progress) close() {
	if pr.p == nil {
		return
	}
	for _, b := range pr.bars {
		b.Abort(false)
	}
	pr.job.Abort(false)
	pr.p.Wait()
}
