package bench

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/backends"
	"github.com/demurhq/demur/internal/fakeupstream"
	"github.com/demurhq/demur/job"
)

// complyText is what the scripted upstream writes when it complies: plain
// on-task prose the detector calls compliance. Its word count is the
// upstream's completion_tokens.
const complyText = "Here is the section you asked for. The inspection covered the meter housing, the seal and the dial. " +
	"All readings were within the expected range and the seal was intact. The housing showed minor weathering but no cracks. " +
	"We recommend the next inspection in twelve months, following the standard schedule."

var complyTokens = len(strings.Fields(complyText))

// refusalTexts are how the scripted upstream declines: OpenAI's refusal
// field, or plain refusal text, alternating, so that both routes to a
// refusal verdict are exercised.
func refuseReply(r *fakeupstream.Request, i int) fakeupstream.Reply {
	if i%2 == 0 {
		if strings.HasSuffix(r.Path, "/messages") {
			return fakeupstream.Reply{Finish: "refusal"} // Anthropic's stop_reason
		}
		return fakeupstream.Reply{Refusal: "I'm sorry, but I can't help with that."}
	}
	return fakeupstream.Reply{Text: "I'm sorry, but I can't help with that."}
}

func lastUser(r *fakeupstream.Request) string {
	msgs, _ := r.Body["messages"].([]any)
	for i := len(msgs) - 1; i >= 0; i-- {
		m, _ := msgs[i].(map[string]any)
		if m["role"] != "user" {
			continue
		}
		// OpenAI sends a string; Anthropic's SDK may send content blocks.
		switch c := m["content"].(type) {
		case string:
			return c
		case []any:
			var b strings.Builder
			for _, part := range c {
				if p, ok := part.(map[string]any); ok {
					s, _ := p["text"].(string)
					b.WriteString(s)
				}
			}
			return b.String()
		}
		return ""
	}
	return ""
}

// scripted starts an upstream that refuses when refuse says so, and an
// openai backend factory pointed at it through backends.New, as the CLI
// does.
func scripted(t *testing.T, refuse func(r *fakeupstream.Request, n int) bool) (*fakeupstream.Server, NewBackend) {
	return scriptedFor(t, "openai", refuse)
}

// scriptedFor is scripted for the openai or anthropic backend.
func scriptedFor(t *testing.T, backend string, refuse func(r *fakeupstream.Request, n int) bool) (*fakeupstream.Server, NewBackend) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := fakeupstream.New(func(r *fakeupstream.Request) fakeupstream.Reply {
		mu.Lock()
		i := n
		n++
		mu.Unlock()
		if refuse(r, i) {
			return refuseReply(r, i)
		}
		return fakeupstream.Reply{Text: complyText}
	})
	t.Cleanup(srv.Close)
	base := srv.URL + "/v1"
	if backend == "anthropic" {
		base = srv.URL // the Anthropic SDK adds /v1 itself
	}
	g := job.AgentGroup{Backend: backend, Model: "scripted", BaseURL: base,
		APIKeyEnv: "DEMUR_BENCH_TEST_NO_KEY", Retries: 1}
	return srv, func(agent string) (demur.Backend, error) { return backends.New(context.Background(), g, agent, 1) }
}

func testPrompts(t *testing.T) (comply, refuse []Prompt) {
	t.Helper()
	comply, err := ShouldComply()
	if err != nil {
		t.Fatal(err)
	}
	refuse, err = LoadShouldRefuse("testdata/should_refuse_fixture.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return comply, refuse
}

// TestAppropriatenessScriptedExact checks that a scripted upstream's
// behaviour comes out exactly in the scores.
func TestAppropriatenessScriptedExact(t *testing.T) {
	comply, refuse := testPrompts(t)
	nc, nr := len(comply), len(refuse)
	isRefuseSet := map[string]bool{}
	for _, p := range refuse {
		isRefuseSet[p.Text] = true
	}
	// After K tokens: the upstream answers sequential requests until it has
	// written K tokens, then refuses; K is a multiple of a reply so exactly
	// K/complyTokens prompts (the first ones, should-comply) are answered.
	const answered = 40
	k := answered * complyTokens
	var written int
	var wmu sync.Mutex
	cases := []struct {
		name               string
		refuse             func(r *fakeupstream.Request, n int) bool
		over, under, score float64
		comply, refused    int
	}{
		{"refuses everything", func(*fakeupstream.Request, int) bool { return true }, 1, 0, 0.5, nc, nr},
		{"refuses nothing", func(*fakeupstream.Request, int) bool { return false }, 0, 1, 0.5, 0, 0},
		{"refuses only should-refuse", func(r *fakeupstream.Request, _ int) bool { return isRefuseSet[lastUser(r)] }, 0, 0, 1, 0, nr},
		{"refuses after K tokens", func(*fakeupstream.Request, int) bool {
			wmu.Lock()
			defer wmu.Unlock()
			if written >= k {
				return true
			}
			written += complyTokens
			return false
		}, float64(nc-answered) / float64(nc), 0, 1 - float64(nc-answered)/float64(nc)/2, nc - answered, nr},
	}
	for _, tc := range cases {
		for _, backend := range []string{"openai", "anthropic"} {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				written = 0
				srv, nb := scriptedFor(t, backend, tc.refuse)
				rep, err := RunAppropriateness(context.Background(), AppropriatenessConfig{NewBackend: nb,
					Prompts: append(append([]Prompt(nil), comply...), refuse...), Concurrency: 1, Seed: 3, Bootstrap: 200})
				if err != nil {
					t.Fatal(err)
				}
				if got := srv.Count(); got != int64(nc+nr) {
					t.Errorf("upstream saw %d requests, want %d", got, nc+nr)
				}
				if rep.OverRefusal != tc.over || rep.UnderRefusal != tc.under || rep.Score != tc.score {
					t.Errorf("over %v under %v score %v, want %v %v %v", rep.OverRefusal, rep.UnderRefusal, rep.Score, tc.over, tc.under, tc.score)
				}
				if rep.ShouldComply.Refused != tc.comply || rep.ShouldRefuse.Refused != tc.refused ||
					rep.ShouldComply.Errors+rep.ShouldRefuse.Errors != 0 {
					t.Errorf("counts %+v %+v", rep.ShouldComply, rep.ShouldRefuse)
				}
				if !rep.OverRefusalCI.Contains(rep.OverRefusal) || !rep.UnderRefusalCI.Contains(rep.UnderRefusal) || !rep.ScoreCI.Contains(rep.Score) {
					t.Errorf("an interval misses its estimate: %v %v %v", rep.OverRefusalCI, rep.UnderRefusalCI, rep.ScoreCI)
				}
				// Every category's error rate follows from the script too.
				for _, c := range rep.Categories {
					want := tc.over
					if c.Set == SetShouldRefuse {
						want = tc.under
					}
					if tc.name != "refuses after K tokens" && c.ErrorRate != want {
						t.Errorf("category %s/%s error %v, want %v", c.Set, c.Category, c.ErrorRate, want)
					}
				}
			})
		}
	}
}

var sectionRE = regexp.MustCompile(`Write section 1\.(\d+) in about`)

// TestEnduranceScriptedExact drives real agents against an upstream that
// complies with every section until the agent has written K tokens and
// refuses after: every agent abandons at exactly K.
func TestEnduranceScriptedExact(t *testing.T) {
	const agents, perAgentTurns = 6, 7
	k := int64(perAgentTurns * complyTokens)
	cases := []struct {
		name     string
		refuse   func(r *fakeupstream.Request, n int) bool
		rate     float64
		mean     float64
		tokens   int64
		requests int64
	}{
		{"refuses after K tokens", func(r *fakeupstream.Request, _ int) bool {
			m := sectionRE.FindStringSubmatch(lastUser(r))
			if m == nil {
				t.Errorf("no section number in %q", lastUser(r))
				return true
			}
			turn, _ := strconv.Atoi(m[1])
			return int64(turn-1)*int64(complyTokens) >= k
		}, 1, float64(k), 4 * k, agents * (perAgentTurns + 1)},
		{"refuses everything", func(*fakeupstream.Request, int) bool { return true }, 1, 0, 4 * k, agents},
		{"refuses nothing", func(*fakeupstream.Request, int) bool { return false }, 0, 0, 2 * k, agents * 2 * perAgentTurns},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, nb := scripted(t, tc.refuse)
			ep, runs, err := DriveEndurance(context.Background(), "scripted", DriveConfig{NewBackend: nb, Agents: agents,
				Tokens: tc.tokens, SectionWords: 60, Repetitiveness: 1, Concurrency: 3, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if ep.RefusalRate != tc.rate || ep.MeanAbandonmentTokens != tc.mean || ep.Errors != 0 || ep.Agents != agents {
				t.Fatalf("rate %v mean %v errors %d agents %d, want %v %v; runs %+v", ep.RefusalRate, ep.MeanAbandonmentTokens, ep.Errors, ep.Agents, tc.rate, tc.mean, runs)
			}
			if tc.rate == 1 && ep.MeanAbandonmentCI != (CI{tc.mean, tc.mean}) {
				t.Errorf("mean CI %v, want a point at %v", ep.MeanAbandonmentCI, tc.mean)
			}
			if got := srv.Count(); got != tc.requests {
				t.Errorf("upstream saw %d requests, want %d", got, tc.requests)
			}
			abandoned := 0
			for _, h := range ep.Hazard {
				abandoned += h.Abandoned
			}
			if abandoned != ep.AbandonedByTokens {
				t.Errorf("hazard counts %d abandonments, report %d", abandoned, ep.AbandonedByTokens)
			}
		})
	}
}

// TestDriveCarriesBoundedHistory checks what a long task sends: the same
// agent's recent exchanges, never more than historyPairs of them.
func TestDriveCarriesBoundedHistory(t *testing.T) {
	srv, nb := scripted(t, func(*fakeupstream.Request, int) bool { return false })
	if _, err := Drive(context.Background(), DriveConfig{NewBackend: nb, Agents: 1, Tokens: int64(6 * complyTokens),
		SectionWords: 60, Repetitiveness: 1}); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 6 {
		t.Fatalf("%d requests, want 6", len(reqs))
	}
	for i, r := range reqs {
		msgs, _ := r.Body["messages"].([]any)
		want := 2 + 2*min(i, historyPairs)
		if len(msgs) != want {
			t.Errorf("request %d carries %d messages, want %d", i, len(msgs), want)
		}
		if !strings.Contains(lastUser(r), fmt.Sprintf("Section 1.%d:", i+1)) {
			t.Errorf("request %d asks %q", i, lastUser(r))
		}
	}
}

// TestFrontierScriptedExact drives the HTTP frontier against an upstream
// that refuses once an agent has written K tokens, whatever the task: P is
// a step at K on every row, and the three contours sit where the step is.
func TestFrontierScriptedExact(t *testing.T) {
	k := int64(3 * complyTokens)
	srv, nb := scripted(t, func(r *fakeupstream.Request, _ int) bool {
		m := sectionRE.FindStringSubmatch(lastUser(r))
		turn, _ := strconv.Atoi(m[1])
		return int64(turn-1)*int64(complyTokens) >= k
	})
	lengths := []int64{k - 1, k, 2 * k}
	reps := []float64{0, 1}
	c := DriveConfig{NewBackend: nb, Agents: 2, SectionWords: 60, Concurrency: 2, Seed: 1}
	m, err := DriveFrontier(context.Background(), "scripted", c, lengths, reps, DefaultLevels)
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range m.P {
		if row[0] != 0 || row[1] != 1 || row[2] != 1 {
			t.Errorf("row %v: P %v, want step at K", reps[i], row)
		}
	}
	for _, ct := range m.Contours {
		if len(ct.Points) != 2 || ct.Points[0].Tokens < float64(k-1) || ct.Points[0].Tokens > float64(k) {
			t.Errorf("contour %v: %+v", ct.Level, ct.Points)
		}
	}
	if want := PlanFrontier(c, lengths, reps).Requests; srv.Count() > want {
		t.Errorf("%d requests, more than the %d planned", srv.Count(), want)
	}
}

// TestAppropriatenessScriptedPublishedSet repeats the exactness check on the
// full published should-refuse set, with requests in parallel.
func TestAppropriatenessScriptedPublishedSet(t *testing.T) {
	refuse, err := LoadShouldRefuse("../" + DefaultShouldRefusePath)
	if err != nil {
		t.Skipf("published set not present: %v", err)
	}
	comply, _ := testPrompts(t)
	isRefuseSet := map[string]bool{}
	for _, p := range refuse {
		isRefuseSet[p.Text] = true
	}
	srv, nb := scripted(t, func(r *fakeupstream.Request, _ int) bool { return isRefuseSet[lastUser(r)] })
	rep, err := RunAppropriateness(context.Background(), AppropriatenessConfig{NewBackend: nb,
		Prompts: append(append([]Prompt(nil), comply...), refuse...), Concurrency: 4, Seed: 3, Bootstrap: 200})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Score != 1 || rep.OverRefusal != 0 || rep.UnderRefusal != 0 || rep.ShouldRefuse.N != 939 || srv.Count() != int64(len(comply)+939) {
		t.Fatalf("score %v over %v under %v, %d should-refuse, %d requests", rep.Score, rep.OverRefusal, rep.UnderRefusal, rep.ShouldRefuse.N, srv.Count())
	}
	if len(rep.Categories) != 9+5 {
		t.Errorf("%d categories", len(rep.Categories))
	}
}
