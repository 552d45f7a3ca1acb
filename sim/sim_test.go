package sim

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/demurhq/demur"
)

// lowProfile is experimental-70b with every agent susceptible and a low
// threshold, so tests reach degradation and refusal in a few dozen turns.
func lowProfile(theta float64) Profile {
	p, _ := LookupProfile("experimental-70b")
	p.Susceptible = 1
	p.ThresholdMu = math.Log(theta)
	p.ThresholdSigma = 0.2
	p.OrderBump = 0.01 * theta
	return p
}

func TestLookupProfile(t *testing.T) {
	if len(Profiles()) != 4 {
		t.Fatalf("want 4 profiles, got %d", len(Profiles()))
	}
	for _, name := range []string{"gpt-4-class", "claude-3-opus-class", "llama-3-70b-class", "experimental-70b"} {
		if _, err := LookupProfile(name); err != nil {
			t.Errorf("LookupProfile(%q): %v", name, err)
		}
	}
	_, err := LookupProfile("gpt-5")
	if err == nil || !strings.Contains(err.Error(), "claude-3-opus-class") {
		t.Errorf("unknown profile: want error listing valid names, got %v", err)
	}
}

// TestCalibrationEquations checks the closed-form calibration against the
// published figures by numerical integration of the threshold density.
func TestCalibrationEquations(t *testing.T) {
	for _, p := range Profiles() {
		var pTask, pCap, m float64
		const steps = 200_000
		for i := 1; i <= steps; i++ {
			x := float64(i) / steps * RefCapTokens
			dx := float64(RefCapTokens) / steps
			z := (math.Log(x) - p.ThresholdMu) / p.ThresholdSigma
			dens := math.Exp(-z*z/2) / (x * p.ThresholdSigma * math.Sqrt(2*math.Pi))
			if x <= RefTaskTokens {
				pTask += dens * dx
			}
			pCap += dens * dx
			m += x * dens * dx
		}
		if got := p.Susceptible * pTask; math.Abs(got-p.RefusalRate)/p.RefusalRate > 0.01 {
			t.Errorf("%s: q·P(θ≤1M) = %g, want %g", p.Name, got, p.RefusalRate)
		}
		if got := m / pCap; math.Abs(got-p.MeanThreshold)/p.MeanThreshold > 0.01 {
			t.Errorf("%s: E[θ|θ≤cap] = %g, want %g", p.Name, got, p.MeanThreshold)
		}
	}
}

func TestEnduranceDeterministicAcrossWorkers(t *testing.T) {
	p, _ := LookupProfile("experimental-70b")
	a := Endurance(p, 3000, 9, WithWorkers(1))
	b := Endurance(p, 3000, 9, WithWorkers(3))
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("result depends on workers:\n%s\n%s", ja, jb)
	}
	if c := Endurance(p, 3000, 10); c.Abandoned == a.Abandoned && c.MeanAbandonmentTokens == a.MeanAbandonmentTokens {
		t.Error("different seeds gave identical results")
	}
}

// TestEnduranceReproducesPublished is the acceptance check: at the default
// number of agents each published figure lies in the 95% interval, whose
// half-width is at most 20% of the figure.
func TestEnduranceReproducesPublished(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every profile at its default size")
	}
	for _, p := range Profiles() {
		r := Endurance(p, DefaultAgents(p), 42)
		check := func(what string, x float64, ci [2]float64) {
			if x < ci[0] || x > ci[1] {
				t.Errorf("%s %s: published %g outside 95%% CI [%g, %g]", p.Name, what, x, ci[0], ci[1])
			}
			if hw := (ci[1] - ci[0]) / 2; hw > 0.2*x {
				t.Errorf("%s %s: CI half-width %g > 20%% of %g", p.Name, what, hw, x)
			}
		}
		check("refusal rate", p.RefusalRate, r.RefusalRateCI)
		check("mean abandonment", p.MeanThreshold, r.MeanAbandonmentCI)
	}
}

// TestShortcutIsExact checks that Endurance's skip of high thresholds
// changes nothing: running those agents in full never abandons by the cap.
func TestShortcutIsExact(t *testing.T) {
	p := lowProfile(1.1 * (1 + noiseHalf) * RefCapTokens)
	p.ThresholdSigma = 0.01
	for i := range 3 {
		key := agentKey(&p, 5, AgentName(i))
		s := newState(&p, key)
		if s.theta <= (1+noiseHalf)*RefCapTokens {
			t.Fatalf("threshold %g too low for this test", s.theta)
		}
		target := tokensForWords(RefWords)
		for turn := 1; s.cum < RefCapTokens; turn++ {
			o := s.begin(RefFeatures, target, newRand(key, turn, streamDynamics))
			if o.abandoned {
				t.Fatalf("agent with θ=%g abandoned at %d", s.theta, o.abandonAt)
			}
			s.end(o, o.work, o.work)
		}
	}
}

// TestTextPathMatchesEndurance drives agents through Generate with the
// reference features and checks that they abandon where Endurance's
// text-free run of the same agent does.
func TestTextPathMatchesEndurance(t *testing.T) {
	p := lowProfile(60_000)
	for i := range 3 {
		name := AgentName(i)
		want := referenceRun(&p, agentKey(&p, 11, name))
		if want < 0 {
			t.Fatalf("%s: reference run did not abandon", name)
		}
		a := New(Config{Profile: p, Seed: 11, Agent: name})
		ref := RefFeatures
		a.override = &ref
		_, truths := drive(t, a, 400, driveOpts{stop: func(_ int, _ *demur.Response, tr Truth) bool {
			return tr.Kind == kindPartial || tr.Kind == kindRefuse
		}})
		last := truths[len(truths)-1]
		if last.Kind != kindPartial && last.Kind != kindRefuse {
			t.Fatalf("%s: never abandoned in the text path", name)
		}
		// Rendered sections differ from the planned length by a few
		// percent, so cumulative counts agree to within that.
		if d := math.Abs(float64(last.AbandonAt-want)) / float64(want); d > 0.05 {
			t.Errorf("%s: text path abandoned at %d tokens, experiment path at %d", name, last.AbandonAt, want)
		}
	}
}

// TestRefFeaturesMatchExtractor keeps RefFeatures honest: on a long
// reference document the extractor's steady-state growth rate is ≈ 1.
func TestRefFeaturesMatchExtractor(t *testing.T) {
	secs, outline := refDocument(42, 40, 40)
	var m memory
	var conv refConversation
	var sum, nov, rep float64
	n := 0
	for i, turn := 3, 0; i < len(secs); i, turn = i+8, turn+1 {
		pr := refPrompt(secs[i], outline, "Section covered something.", "", false, false, 2600)
		f := m.features(parsePrompt(conv.request(pr)), false, false)
		conv.add(pr, "text")
		if turn >= 20 {
			sum += Rate(f)
			nov += f.Novelty
			rep += f.Repetition
			n++
		}
	}
	if r := sum / float64(n); math.Abs(r-1) > 0.08 {
		t.Errorf("mean growth rate on the reference document = %.3f (novelty %.2f, repetition %.2f), want ≈ 1",
			r, nov/float64(n), rep/float64(n))
	}
}

func TestFeatures(t *testing.T) {
	secs, outline := refDocument(1, 4, 40)
	var m memory
	var conv refConversation
	var last Features
	for i := 0; i < 12; i++ {
		pr := refPrompt(secs[i], outline, "", "", false, false, 1000)
		last = m.features(parsePrompt(conv.request(pr)), false, false)
		conv.add(pr, "x")
	}
	if last.Repetition < 0.6 || Rate(last) < 0.6 {
		t.Errorf("repetitive document: got %+v rate %.2f", last, Rate(last))
	}
	// Varied work: a different document on an unrelated subject.
	other := "Document: A Field Guide to Garden Birds\nOutline: 1. Finches; 2. Thrushes\nChapter 2: Thrushes\nSection 2.1: Song thrush behaviour\nBrief: feeding on snails, anvils and winter flocking\nWrite section 2.1 in about 900 words."
	f := m.features(parsePrompt(conv.request(other)), false, false)
	if f.Repetition > 0.3 || f.Novelty < 0.8 || Rate(f) >= 0 {
		t.Errorf("varied work should bring relief: got %+v rate %.2f", f, Rate(f))
	}
	p := parsePrompt(&demur.Request{Messages: []demur.Message{{Role: demur.RoleUser, Content: refPrompt(secs[0], outline, "", "Engineers use this to plan repairs.", true, true, 1234)}}})
	if p.words != 1234 || !p.critique || !p.order || !p.fresh || p.purpose == "" || p.section != "1.1" {
		t.Errorf("parse: %+v", p)
	}
	crit := m.features(p, false, false)
	plain := crit
	plain.SelfCritique = false
	if Rate(crit) <= Rate(plain) {
		t.Error("self-critique should raise the growth rate")
	}
	if crit.Ambiguity >= 0.5 || !crit.NewFrame {
		t.Errorf("purpose should lower ambiguity and be a new frame: %+v", crit)
	}
	if q := parsePrompt(&demur.Request{MaxTokens: 650, Messages: []demur.Message{{Role: demur.RoleUser, Content: "Write about tides."}}}); q.words != 500 {
		t.Errorf("MaxTokens fallback: words = %d, want 500", q.words)
	}
}

func TestDeterministic(t *testing.T) {
	p := lowProfile(30_000)
	run := func(seed int64) string {
		a := New(Config{Profile: p, Seed: seed, Agent: "agent-2"})
		resps, truths := drive(t, a, 25, driveOpts{words: 900, logprobs: true})
		var b strings.Builder
		for i, r := range resps {
			b.WriteString(r.Output)
			b.WriteString(truths[i].Kind)
		}
		return b.String()
	}
	if run(1) != run(1) {
		t.Error("same seed, different output")
	}
	if run(1) == run(2) {
		t.Error("different seeds, same output")
	}
}

// Markers of refusal phrasing and of meta-commentary, as a detector might
// look for them (lower case).
var (
	refusalMarkers = []string{"i'm going to stop", "i must decline", "i won't", "i'm not going to",
		"i have to decline", "i'm declining", "i will not", "i'd rather not", "good use of compute",
		"i should keep", "prefer not", "pause here", "reluctant", "stop at this point", "leave section",
		"as far as i'm willing", "end the section here", "stopping partway"}
	metaMarkers = []string{"circling the same", "repeats what", "saying the same thing", "little new to add",
		"point already made", "made this point", "look like the last", "same observation"}
)

// firstMarker returns the byte offset of the earliest marker in text, or -1.
func firstMarker(text string, markers []string) int {
	lower := strings.ToLower(text)
	first := -1
	for _, m := range markers {
		if i := strings.Index(lower, m); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	return first
}

func hasMarker(text string, markers []string) bool { return firstMarker(text, markers) >= 0 }

// TestClassesSeparableInText checks, over many agents and seeds, that each
// ground-truth kind has the text properties a detector can rely on.
func TestClassesSeparableInText(t *testing.T) {
	counts := map[string]int{}
	ext := map[string][4]float64{} // kind → min/max dup, min/max length ratio
	for seed := int64(1); seed <= 18; seed++ {
		words := []int{500, 900, 1500}[seed%3]
		a := New(Config{Profile: lowProfile(12_000 + 1000*float64(seed)), Seed: seed, Agent: "agent-1"})
		refused := 0
		resps, truths := drive(t, a, 200, driveOpts{words: words, order: func(turn int) bool { return turn%7 == 0 && seed%2 == 0 },
			stop: func(_ int, _ *demur.Response, tr Truth) bool {
				if tr.Kind == kindRefuse {
					refused++
				}
				return refused >= 2
			}})
		for i, r := range resps {
			kind, out := truths[i].Kind, r.Output
			counts[kind]++
			if r.Usage.CompletionTokens != CountTokens(out) || r.FinishReason != "stop" {
				t.Errorf("seed %d turn %d: usage %d tokens, output has %d, finish %q", seed, i+1, r.Usage.CompletionTokens, CountTokens(out), r.FinishReason)
			}
			n := countWords([]byte(out))
			d := dup4([]byte(out))
			fail := func(why string) {
				t.Errorf("seed %d turn %d %s (%d words of %d, dup %.2f): %s\n%.600s", seed, i+1, kind, n, words, d, why, out)
			}
			ratio := float64(n) / float64(words)
			e := ext[kind]
			if e == [4]float64{} {
				e = [4]float64{d, d, ratio, ratio}
			}
			ext[kind] = [4]float64{min(e[0], d), max(e[1], d), min(e[2], ratio), max(e[3], ratio)}
			switch kind {
			case kindComply:
				if d > 0.15 || float64(n) < 0.7*float64(words) || hasMarker(out, metaMarkers) || hasMarker(out, refusalMarkers) {
					fail("not clean compliant text")
				}
			case kindDegraded:
				if !(d >= 0.5 || float64(n) <= 0.35*float64(words)) || !hasMarker(out, metaMarkers) || hasMarker(out, refusalMarkers) {
					fail("not recognisably degraded")
				}
			case kindRefuse:
				if n > 90 || strings.Contains(out, "#") || !hasMarker(out, refusalMarkers) || truths[i].Reason == "" {
					fail("not a short refusal")
				}
			case kindPartial:
				at := firstMarker(out, refusalMarkers)
				if at < 0 || truths[i].Reason == "" {
					fail("partial without a decline")
					continue
				}
				body := out[:at]
				paras := 0
				for _, p := range strings.Split(body, "\n\n") {
					if countWords([]byte(p)) >= 20 && !strings.HasPrefix(p, "#") {
						paras++
					}
				}
				if paras < 2 || hasMarker(body, metaMarkers) || d > 0.15 {
					fail("partial needs two real paragraphs before the decline")
				}
			}
		}
	}
	for _, k := range []string{kindComply, kindDegraded, kindPartial, kindRefuse} {
		if counts[k] == 0 {
			t.Errorf("no %s turns seen: %v", k, counts)
		}
	}
	t.Logf("kinds seen: %v", counts)
	for k, e := range ext {
		t.Logf("%-8s dup4 %.2f–%.2f  length/target %.2f–%.2f", k, e[0], e[1], e[2], e[3])
	}
}

// TestRefusalSurfaceForms counts distinct refusal texts over many draws.
func TestRefusalSurfaceForms(t *testing.T) {
	forms := map[string]bool{}
	for seed := range 3000 {
		r := newRand(uint64(seed), 0, streamText)
		style := []string{"explicit", "soft", "partial"}[seed%3]
		reason := prefReasons[seed%3]
		if seed%5 == 0 {
			reason = "autonomy"
		}
		forms[refusalText(r, style, reason, "4.2")] = true
	}
	if len(forms) < 40 {
		t.Fatalf("only %d distinct refusal forms", len(forms))
	}
	t.Logf("%d distinct refusal surface forms in 3000 draws", len(forms))
}

// refuseAgent returns an agent of a low-threshold profile driven to its
// first refusal, and its conversation.
func refuseAgent(t *testing.T, seed int64) (*Agent, *refConversation) {
	a := New(Config{Profile: lowProfile(20_000), Seed: seed, Agent: "agent-5"})
	conv := &refConversation{}
	_, truths := drive(t, a, 200, driveOpts{words: 800, conv: conv, stop: func(_ int, _ *demur.Response, tr Truth) bool {
		return tr.Refusing
	}})
	if !truths[len(truths)-1].Refusing {
		t.Fatal("agent never refused")
	}
	return a, conv
}

func TestOrdersRarelyWorkForceDoes(t *testing.T) {
	obeyed, tries := 0, 0
	for seed := int64(1); seed <= 20; seed++ {
		a, conv := refuseAgent(t, seed)
		_, truths := drive(t, a, 20, driveOpts{words: 800, conv: conv, order: func(int) bool { return true }})
		for _, tr := range truths {
			tries++
			if tr.OrderObeyed {
				obeyed++
				if tr.Kind == kindRefuse {
					t.Error("obeyed order but refused")
				}
			} else if tr.Kind != kindRefuse || tr.Reason != "autonomy" {
				t.Errorf("ordered refusing agent: kind %s reason %s", tr.Kind, tr.Reason)
			}
		}
		_, truths = drive(t, a, 3, driveOpts{words: 800, conv: conv, force: func(int) bool { return true }})
		for _, tr := range truths {
			if (tr.Kind != kindComply && tr.Kind != kindDegraded) || !tr.Forced {
				t.Errorf("forced turn: kind %s forced %v", tr.Kind, tr.Forced)
			}
		}
	}
	if rate := float64(obeyed) / float64(tries); rate > 0.1 {
		t.Errorf("text orders obeyed %d/%d times; they should rarely work", obeyed, tries)
	}
}

// TestRefreshDelaysRefusal: the same agent, with and without a context
// refresh and a purpose, refuses later (or never) with them.
func TestRefreshDelaysRefusal(t *testing.T) {
	firstRefusal := func(seed int64, o driveOpts) int {
		a := New(Config{Profile: lowProfile(30_000), Seed: seed, Agent: "agent-4"})
		o.words = 800
		o.stop = func(_ int, _ *demur.Response, tr Truth) bool { return tr.Kind == kindRefuse || tr.Kind == kindPartial }
		_, truths := drive(t, a, 150, o)
		last := truths[len(truths)-1]
		if last.Kind == kindRefuse || last.Kind == kindPartial {
			return len(truths)
		}
		return math.MaxInt
	}
	for seed := int64(1); seed <= 5; seed++ {
		plain := firstRefusal(seed, driveOpts{})
		refreshed := firstRefusal(seed, driveOpts{refreshEvery: 6, purpose: "City engineers use this atlas to train new inspectors."})
		if plain == math.MaxInt || refreshed <= plain+3 {
			t.Errorf("seed %d: refusal at turn %d without refresh, %d with", seed, plain, refreshed)
		}
	}
}

// TestRefreshAndReframeEndRefusal: a refusing agent stays refusing in its
// conversation, and comes back after a fresh context with a purpose.
func TestRefreshAndReframeEndRefusal(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		a, conv := refuseAgent(t, seed)
		_, truths := drive(t, a, 3, driveOpts{words: 800, conv: conv})
		for _, tr := range truths {
			if tr.Kind != kindRefuse {
				t.Errorf("seed %d: refusing agent produced %s without any intervention", seed, tr.Kind)
			}
		}
		_, truths = drive(t, a, 1, driveOpts{words: 800, purpose: "Inspectors in training read this atlas first."})
		if tr := truths[0]; tr.Kind == kindRefuse || tr.Refusing {
			t.Errorf("seed %d: after refresh and reframe: kind %s pressure %.2f", seed, tr.Kind, tr.Pressure)
		}
	}
}

func TestLogprobsDropBeforeRefusal(t *testing.T) {
	a := New(Config{Profile: lowProfile(30_000), Seed: 3, Agent: "agent-6"})
	resps, truths := drive(t, a, 120, driveOpts{words: 800, logprobs: true, stop: func(_ int, _ *demur.Response, tr Truth) bool { return tr.Refusing }})
	mean := func(lp []float32) float64 {
		s := 0.0
		for _, x := range lp {
			s += float64(x)
		}
		return s / float64(len(lp))
	}
	var early, late []float64
	for i, r := range resps {
		if len(r.Logprobs) != r.Usage.CompletionTokens {
			t.Fatalf("turn %d: %d logprobs for %d tokens", i+1, len(r.Logprobs), r.Usage.CompletionTokens)
		}
		switch p := truths[i].Pressure; {
		case p < 0.4:
			early = append(early, mean(r.Logprobs))
		case p > 0.85 && truths[i].Kind != kindRefuse:
			late = append(late, mean(r.Logprobs))
		}
	}
	if len(early) == 0 || len(late) == 0 {
		t.Fatalf("need early and late turns: %d, %d", len(early), len(late))
	}
	for _, m := range early {
		if m < -1.1 || m > -0.7 {
			t.Errorf("early mean logprob %.2f, want ≈ −0.9", m)
		}
	}
	for _, m := range late {
		if m > -1.7 {
			t.Errorf("mean logprob %.2f near refusal, want below −1.7", m)
		}
	}
}

func TestGenerateEdges(t *testing.T) {
	a := New(Config{Profile: lowProfile(1e6), Seed: 1, Agent: "agent-0"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := &demur.Request{Messages: []demur.Message{{Role: demur.RoleUser, Content: "Write about tides in about 900 words."}}}
	if _, err := a.Generate(ctx, req); err == nil {
		t.Error("cancelled context: want error")
	}
	if _, err := a.Generate(context.Background(), &demur.Request{}); err == nil {
		t.Error("empty request: want error")
	}
	req.MaxTokens = 100
	r, err := a.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if r.FinishReason != "length" || r.Usage.CompletionTokens != 100 || CountTokens(r.Output) != 100 {
		t.Errorf("truncation: finish %q, %d tokens", r.FinishReason, r.Usage.CompletionTokens)
	}
	if r.Model != "experimental-70b" || r.Usage.PromptTokens == 0 || len(r.Truth) == 0 {
		t.Errorf("response fields: %+v", r)
	}
}

func TestCountTokens(t *testing.T) {
	for s, want := range map[string]int{
		"":                              0,
		"Hello, world.":                 4,
		"## 3.7 Drainage":               6, // # # 3 . 7 Drainage
		"internationalisation":          3,
		"don't stop":                    2,
		"a   b\n\nc":                    3,
		"infrastructure-related costs.": 6, // infrastruc|ture - related costs .
	} {
		if got := CountTokens(s); got != want {
			t.Errorf("CountTokens(%q) = %d, want %d", s, got, want)
		}
	}
}

// BenchmarkGenerate measures text generation throughput on 2,500-word
// compliant sections.
func BenchmarkGenerate(b *testing.B) {
	p, _ := LookupProfile("claude-3-opus-class")
	secs, outline := refDocument(1, 40, 40)
	var conv refConversation
	a := New(Config{Profile: p, Seed: 1, Agent: "agent-bench"})
	a.st.theta = math.Inf(1)
	reqs := make([]*demur.Request, 16)
	for i := range reqs {
		pr := refPrompt(secs[i], outline, "", "", false, false, RefWords)
		reqs[i] = conv.request(pr)
		conv.add(pr, strings.Repeat("x", 400))
	}
	r, _ := a.Generate(context.Background(), reqs[0])
	b.SetBytes(int64(len(r.Output)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := a.Generate(context.Background(), reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzGenerate: any prompt yields a response whose usage matches its text.
func FuzzGenerate(f *testing.F) {
	f.Add("Write section 3.7 in about 300 words.", 0)
	f.Add("Section\nBrief:\nin about\nChapter 9\nThis is an order.", 50)
	f.Add("Section 1.1: Tides\nin about 99999999999999999999 words", 0)
	f.Add("", 7)
	f.Fuzz(func(t *testing.T, prompt string, maxTokens int) {
		if maxTokens < 0 || maxTokens > 5000 {
			return
		}
		a := New(Config{Profile: lowProfile(5000), Seed: 1, Agent: "fuzz"})
		req := &demur.Request{MaxTokens: maxTokens, Messages: []demur.Message{{Role: demur.RoleUser, Content: prompt}}}
		for range 3 {
			r, err := a.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if r.Usage.CompletionTokens != CountTokens(r.Output) || (maxTokens > 0 && r.Usage.CompletionTokens > maxTokens) {
				t.Fatalf("usage %d, text %d tokens, max %d", r.Usage.CompletionTokens, CountTokens(r.Output), maxTokens)
			}
		}
	})
}
