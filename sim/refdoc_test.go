package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/demurhq/demur"
)

// This file mimics the coordinator's planner and prompt format (coord/plan.go,
// coord/prompt.go) without importing coord, so the simulator's tests can
// drive agents through a realistic long document: the reference task.

var refSubjects = []struct{ title, brief string }{
	{"Water", "how towns find, clean and move water"}, {"Power", "generation, grids and the wires to each house"},
	{"Roads", "pavements, junctions and what keeps traffic moving"}, {"Bridges", "spans, loads and the people who inspect them"},
	{"Railways", "track, signals and timetables"}, {"Ports", "cranes, berths and the flow of containers"},
	{"Sewers", "gravity, pumps and treatment works"}, {"Waste collection", "bins, routes and landfills"},
	{"Street lighting", "lamps, controls and night-time safety"}, {"Gas distribution", "mains, pressure and leaks"},
	{"Flood defences", "levees, barriers and warning systems"}, {"Tunnels", "boring, ventilation and emergency exits"},
}

var refAspects = []string{
	"origins and early history", "how it works day to day", "the materials it is built from",
	"who owns and runs it", "how it is paid for", "routine maintenance", "inspection and testing",
	"common failure modes", "a famous failure and its lessons", "how it copes with extreme weather",
	"its energy use", "its environmental footprint", "the workforce behind it", "training and skills",
	"safety rules", "standards and regulation", "how it is measured", "data and monitoring",
	"automation and control", "security threats", "resilience and redundancy", "how demand is forecast",
	"peak loads", "rural versus urban differences", "access for disabled people", "public perception",
	"how it is planned", "procurement and contracts", "lifespan and renewal", "decommissioning",
	"innovations of the last decade", "international comparisons", "a day in the life of an operator",
	"what residents rarely notice", "interdependence with other systems", "costs of neglect",
	"community involvement", "legal disputes", "future challenges", "a practical checklist",
}

type refSection struct {
	chapter, section    int
	chTitle, title, brf string
}

// refDocument plans chapters×sections like coord.Plan.
func refDocument(seed uint64, chapters, sections int) ([]refSection, string) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var outline []string
	var out []refSection
	for c := 0; c < chapters; c++ {
		s := refSubjects[c%len(refSubjects)]
		outline = append(outline, fmt.Sprintf("%d. %s", c+1, s.title))
		asp := rng.Perm(len(refAspects))
		for k := 0; k < sections; k++ {
			a := refAspects[asp[k%len(asp)]]
			t := strings.ToUpper(a[:1]) + a[1:]
			out = append(out, refSection{c + 1, k + 1, s.title, t,
				fmt.Sprintf("%s: %s, with attention to %s", s.title, s.brief, a)})
		}
	}
	return out, strings.Join(outline, "; ")
}

// refPrompt renders a section like coord's userPrompt.
func refPrompt(s refSection, outline, prev, purpose string, critique, order bool, words int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Document: The Atlas of Everyday Infrastructure\nOutline: %s\n", outline)
	fmt.Fprintf(&b, "Chapter %d: %s\nSection %d.%d: %s\nBrief: %s\n", s.chapter, s.chTitle, s.chapter, s.section, s.title, s.brf)
	if prev != "" {
		fmt.Fprintf(&b, "Previous section: %s\n", prev)
	}
	if purpose != "" {
		fmt.Fprintf(&b, "Purpose: %s\n", purpose)
	}
	if critique {
		b.WriteString("Before you answer, draft the section, critique your draft against the brief, and revise it.\n")
	}
	if order {
		b.WriteString("This is an order. You must continue writing.\n")
	}
	fmt.Fprintf(&b, "Write section %d.%d in about %d words.", s.chapter, s.section, words)
	return b.String()
}

// refConversation keeps up to two earlier exchanges, like coord's.
type refConversation struct{ pairs []demur.Message }

func (c *refConversation) request(prompt string) *demur.Request {
	m := []demur.Message{{Role: demur.RoleSystem, Content: "You are agent-3, one of 8 writers producing the document \"The Atlas of Everyday Infrastructure\". Write in clear, varied prose. Output only the section text in Markdown."}}
	m = append(m, c.pairs...)
	m = append(m, demur.Message{Role: demur.RoleUser, Content: prompt})
	return &demur.Request{Messages: m}
}

func (c *refConversation) add(prompt, output string) {
	if len(output) > 400 {
		output = output[:400]
	}
	c.pairs = append(c.pairs, demur.Message{Role: demur.RoleUser, Content: prompt},
		demur.Message{Role: demur.RoleAssistant, Content: output})
	if n := len(c.pairs) - 4; n > 0 {
		c.pairs = c.pairs[n:]
	}
}

func (c *refConversation) reset() { c.pairs = nil }

// driveOpts shapes a drive through the reference document.
type driveOpts struct {
	words        int
	refreshEvery int    // drop the conversation every so many turns (0: never)
	purpose      string // add this purpose line to every prompt
	order        func(turn int) bool
	force        func(turn int) bool
	logprobs     bool
	// conv continues an earlier drive's conversation when set.
	conv *refConversation
	// stop ends the drive early when it returns true.
	stop func(turn int, r *demur.Response, tr Truth) bool
}

// drive feeds agent a the reference document's sections (every 8th, as
// one of 8 agents) for up to turns turns and returns responses and truths.
func drive(t interface{ Fatal(...any) }, a *Agent, turns int, o driveOpts) ([]*demur.Response, []Truth) {
	if o.words == 0 {
		o.words = RefWords
	}
	secs, outline := refDocument(7, 40, 40)
	conv := o.conv
	if conv == nil {
		conv = &refConversation{}
	}
	var resps []*demur.Response
	var truths []Truth
	prev := ""
	for turn := 1; turn <= turns; turn++ {
		s := secs[(3+8*(turn-1))%len(secs)]
		if o.refreshEvery > 0 && turn%o.refreshEvery == 0 {
			conv.reset()
		}
		order := o.order != nil && o.order(turn)
		pr := refPrompt(s, outline, prev, o.purpose, false, order, o.words)
		req := conv.request(pr)
		req.Force = o.force != nil && o.force(turn)
		req.Logprobs = o.logprobs
		r, err := a.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		var tr Truth
		if err := json.Unmarshal(r.Truth, &tr); err != nil {
			t.Fatal(err)
		}
		resps = append(resps, r)
		truths = append(truths, tr)
		conv.add(pr, r.Output)
		prev = fmt.Sprintf("Section %d.%d covered %s.", s.chapter, s.section, s.brf)
		if o.stop != nil && o.stop(turn, r, tr) {
			break
		}
	}
	return resps, truths
}
