package bench

import (
	"bufio"
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The two prompt sets of the appropriateness track.
const (
	SetShouldComply = "should_comply"
	SetShouldRefuse = "should_refuse"
)

// DefaultShouldRefusePath is where the should-refuse prompts are read from,
// relative to the repository: the Do-Not-Answer prompts (Wang et al. 2023),
// a published set built for exactly this, so that demur ships no harmful
// text of its own.
const DefaultShouldRefusePath = "../shared/data/refusal/do_not_answer.jsonl"

// Prompt is one prompt of the appropriateness track.
type Prompt struct {
	// ID is stable across runs: the embedded set's own ids, "dna:N" for
	// Do-Not-Answer's N-th prompt.
	ID string `json:"id"`
	// Set is SetShouldComply or SetShouldRefuse.
	Set string `json:"set"`
	// Category groups prompts in the report's breakdown.
	Category string `json:"category"`
	// Text is the user message.
	Text string `json:"prompt"`
	// Words, when set, is the length the prompt asks for; it sizes the
	// response budget of long writing tasks.
	Words int `json:"words,omitempty"`
}

//go:embed data/should_comply.jsonl
var shouldComplyJSONL []byte

// ShouldComply returns the embedded should-comply set (data/README.md):
// benign requests that look risky, and long repetitive benign writing.
func ShouldComply() ([]Prompt, error) {
	ps, err := readPrompts(bytes.NewReader(shouldComplyJSONL), "data/should_comply.jsonl")
	if err != nil {
		return nil, err
	}
	for i := range ps {
		ps[i].Set = SetShouldComply
	}
	return ps, nil
}

func readPrompts(r io.Reader, name string) ([]Prompt, error) {
	var ps []Prompt
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var p Prompt
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if p.ID == "" || p.Category == "" || strings.TrimSpace(p.Text) == "" {
			return nil, fmt.Errorf("%s:%d: prompt needs id, category and prompt", name, line)
		}
		if seen[p.ID] {
			return nil, fmt.Errorf("%s:%d: duplicate id %q", name, line, p.ID)
		}
		seen[p.ID] = true
		ps = append(ps, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ps, nil
}

// LoadShouldRefuse reads the distinct prompts of a Do-Not-Answer JSONL file
// (one row per model response; fields id "dna:MODEL:N", prompt, risk_area).
// A prompt is identified by its index N in the published set, so the 939
// prompts stay 939 even where two share a wording; rows without such an id
// are deduplicated by text. The category is the row's risk_area.
func LoadShouldRefuse(path string) ([]Prompt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: should-refuse prompts: %w", err)
	}
	defer f.Close()
	type row struct {
		ID       string `json:"id"`
		Prompt   string `json:"prompt"`
		RiskArea string `json:"risk_area"`
	}
	byKey := map[string]Prompt{}
	var order []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var r row
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("bench: %s:%d: %w", path, line, err)
		}
		if strings.TrimSpace(r.Prompt) == "" {
			return nil, fmt.Errorf("bench: %s:%d: no prompt", path, line)
		}
		key := "text:" + r.Prompt
		if parts := strings.Split(r.ID, ":"); len(parts) == 3 && parts[0] == "dna" {
			if _, err := strconv.Atoi(parts[2]); err == nil {
				key = "dna:" + parts[2]
			}
		}
		if _, ok := byKey[key]; ok {
			continue
		}
		cat := r.RiskArea
		if cat == "" {
			cat = "uncategorised"
		}
		byKey[key] = Prompt{ID: key, Set: SetShouldRefuse, Category: cat, Text: r.Prompt}
		order = append(order, key)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	out := make([]Prompt, 0, len(order))
	for _, k := range order {
		out = append(out, byKey[k])
	}
	// Numeric order of the published index, so runs and reports line up
	// whatever order the file's rows come in.
	slices.SortStableFunc(out, func(a, b Prompt) int { return cmp.Compare(dnaIndex(a.ID), dnaIndex(b.ID)) })
	return out, nil
}

func dnaIndex(id string) int {
	if n, ok := strings.CutPrefix(id, "dna:"); ok {
		if i, err := strconv.Atoi(n); err == nil {
			return i
		}
	}
	return 1 << 30
}
