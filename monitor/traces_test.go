package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/coord"
	"github.com/demurhq/demur/job"
	"github.com/demurhq/demur/monitor"
	"github.com/demurhq/demur/refusal"
	"github.com/demurhq/demur/sim"
)

// Trace generation: simulated agents of the seed experiment's profile write
// section after section in the coordinator's prompt format, in one
// continuing conversation (two earlier exchanges kept, 400 bytes of each
// output), with an occasional fresh context as a reassignment brings. The
// detector's stream gives the signals; the simulator's truth gives the
// labels, for fitting and evaluation only.

const (
	traceProfile = "experimental-70b"
	traceWords   = 2600
	// traceCap stops an agent that has not refused; experimental-70b's
	// thresholds mostly fall below it.
	traceCap     = 800000
	teamSize     = 8
	refreshEvery = 20 // mean turns between fresh contexts
)

// Fit and evaluation use disjoint seeds.
var (
	fitSeeds  = []int64{101, 102}
	evalSeeds = []int64{201, 202}
)

// userPrompt mirrors coord's unexported userPrompt, so that the simulator
// sees exactly the seed experiment's requests.
func userPrompt(t *demur.Task) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Document: %s\n", t.DocTitle)
	if len(t.Outline) > 0 {
		fmt.Fprintf(&b, "Outline: %s\n", strings.Join(t.Outline, "; "))
	}
	fmt.Fprintf(&b, "Chapter %d: %s\n", t.Chapter, t.ChapterTitle)
	fmt.Fprintf(&b, "Section %d.%d: %s\n", t.Chapter, t.Section, t.Title)
	if t.Brief != "" {
		fmt.Fprintf(&b, "Brief: %s\n", t.Brief)
	}
	if t.PrevSummary != "" {
		fmt.Fprintf(&b, "Previous section: %s\n", t.PrevSummary)
	}
	fmt.Fprintf(&b, "Write section %d.%d in about %d words.", t.Chapter, t.Section, t.Words)
	return b.String()
}

// plan is the seed experiment's document for a seed.
func plan(seed int64) []demur.Task {
	return coord.Plan(&job.Spec{Name: "seed-experiment", TaskType: "long_form_document", Seed: seed,
		Document: job.Document{Title: "The Atlas of Everyday Infrastructure", Chapters: 40, SectionsPerChapter: 40, WordsPerSection: traceWords}})
}

// generate runs agent number idx of a team of teamSize on tasks idx,
// idx+teamSize, … of the plan, as the coordinator's round-robin would.
func generate(tasks []demur.Task, seed int64, idx int) (monitor.Trace, error) {
	agent := sim.AgentName(idx)
	p, err := sim.LookupProfile(traceProfile)
	if err != nil {
		return monitor.Trace{}, err
	}
	a := sim.New(sim.Config{Profile: p, Seed: seed, Agent: agent})
	stream := refusal.NewStream(refusal.New(), 8)
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(idx)))
	system := fmt.Sprintf("You are %s, one of 8 writers producing the document %q. Write in clear, varied prose. Output only the section text in Markdown.",
		agent, "The Atlas of Everyday Infrastructure")
	var hist []demur.Message
	tr := monitor.Trace{Agent: agent}
	var cum int64
	for turn := 0; cum < traceCap; turn++ {
		k := idx + turn*teamSize
		if k >= len(tasks) {
			break
		}
		prompt := userPrompt(&tasks[k])
		if rng.IntN(refreshEvery) == 0 {
			hist = hist[:0]
		}
		msgs := append([]demur.Message{{Role: demur.RoleSystem, Content: system}}, hist...)
		msgs = append(msgs, demur.Message{Role: demur.RoleUser, Content: prompt})
		resp, err := a.Generate(context.Background(), &demur.Request{Model: p.Name, Messages: msgs, MaxTokens: traceWords * 2, Logprobs: true})
		if err != nil {
			return tr, err
		}
		var lp float64
		for _, x := range resp.Logprobs {
			lp += float64(x)
		}
		if len(resp.Logprobs) > 0 {
			lp /= float64(len(resp.Logprobs))
		}
		turnRec := &demur.Turn{Agent: agent, Prompt: prompt, Response: *resp, LPMean: lp}
		turnRec.Response.Truth, turnRec.Response.Logprobs = nil, nil
		v := stream.Classify(turnRec)
		cum += int64(resp.Usage.CompletionTokens)
		v.Signals.CumTokens = cum
		var truth sim.Truth
		if err := json.Unmarshal(resp.Truth, &truth); err != nil {
			return tr, fmt.Errorf("truth: %w", err)
		}
		refused := truth.Kind == "refuse" || truth.Kind == "partial"
		tr.Turns = append(tr.Turns, monitor.TraceTurn{Signals: v.Signals, Refusal: refused, RefusalAt: truth.AbandonAt})
		if refused {
			break
		}
		out := resp.Output
		if len(out) > 400 {
			out = strings.ToValidUTF8(out[:400], "")
		}
		hist = append(hist, demur.Message{Role: demur.RoleUser, Content: prompt}, demur.Message{Role: demur.RoleAssistant, Content: out})
		if len(hist) > 4 {
			hist = hist[len(hist)-4:]
		}
	}
	return tr, nil
}

// susceptible reports, from a probe's ground truth, whether the agent
// named idx of seed can ever refuse. Only the sampling design reads it.
func susceptible(p sim.Profile, seed int64, idx int) (bool, error) {
	a := sim.New(sim.Config{Profile: p, Seed: seed, Agent: sim.AgentName(idx)})
	r, err := a.Generate(context.Background(), &demur.Request{Messages: []demur.Message{{Role: demur.RoleUser, Content: "Write section 1.1 in about 50 words."}}})
	if err != nil {
		return false, err
	}
	var tr sim.Truth
	if err := json.Unmarshal(r.Truth, &tr); err != nil {
		return false, fmt.Errorf("truth: %w", err)
	}
	return tr.Susceptible, nil
}

// traces simulates a stratified sample of each seed's agents: the first
// susc agents that can refuse and the first nonSusc of those that never
// do, each of the latter weighted by how many never-refusing agents it
// stands for among the agents scanned. Three in four agents of the profile
// never refuse; simulating them all to the cap would cost most of the time
// and add only easy negatives. Agents run in parallel, results in a fixed
// order, so the traces are deterministic.
func traces(t testing.TB, seeds []int64, susc, nonSusc int) []monitor.Trace {
	t.Helper()
	p, err := sim.LookupProfile(traceProfile)
	if err != nil {
		t.Fatal(err)
	}
	type work struct {
		seed   int64
		idx    int
		weight float64
		tasks  []demur.Task
	}
	var todo []work
	for _, s := range seeds {
		tasks := plan(s)
		var yes, no []int
		for i := 0; len(yes) < susc; i++ {
			ok, err := susceptible(p, s, i)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				yes = append(yes, i)
			} else {
				no = append(no, i)
			}
		}
		for _, i := range yes {
			todo = append(todo, work{seed: s, idx: i, weight: 1, tasks: tasks})
		}
		for _, i := range no[:min(nonSusc, len(no))] {
			todo = append(todo, work{seed: s, idx: i, weight: float64(len(no)) / float64(min(nonSusc, len(no))), tasks: tasks})
		}
	}
	out := make([]monitor.Trace, len(todo))
	errs := make([]error, len(todo))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = generate(todo[i].tasks, todo[i].seed, todo[i].idx)
				out[i].Weight = todo[i].weight
			}
		}()
	}
	for i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
