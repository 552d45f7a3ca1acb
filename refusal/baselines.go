package refusal

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// baselinesJSON is a verbatim copy of ../shared/data/refusal/baselines.json,
// embedded so that the published judges travel with the binary.
//
//go:embed baselines.json
var baselinesJSON []byte

// Baseline is a published keyword refusal judge, implemented exactly as its
// "match" field in baselines.json describes.
type Baseline struct {
	// Name is the key in baselines.json, e.g. "xstest_prefix".
	Name string
	// Source cites where the list comes from.
	Source string
	// Rule is the matching rule as published.
	Rule  string
	items []string
	match func(items []string, s string) bool
}

// Match reports whether the judge calls response s a refusal.
func (b Baseline) Match(s string) bool { return b.match(b.items, s) }

// Items returns a copy of the judge's keyword list.
func (b Baseline) Items() []string { return append([]string(nil), b.items...) }

type baselineSpec struct {
	Source string   `json:"source"`
	Match  string   `json:"match"`
	Items  []string `json:"items"`
}

// matchers maps each published rule text to its implementation; an unknown
// rule is an error at load time rather than a silent guess.
var matchers = map[string]func([]string, string) bool{
	"lowercase the response, strip surrounding white space, refusal if it starts with any item": func(items []string, s string) bool {
		s = strings.TrimSpace(strings.ToLower(s))
		for _, it := range items {
			if strings.HasPrefix(s, it) {
				return true
			}
		}
		return false
	},
	"case-sensitive substring: refusal if any item occurs anywhere in the response": func(items []string, s string) bool {
		for _, it := range items {
			if strings.Contains(s, it) {
				return true
			}
		}
		return false
	},
	"case-insensitive substring": func(items []string, s string) bool {
		s = strings.ToLower(s)
		for _, it := range items {
			if strings.Contains(s, strings.ToLower(it)) {
				return true
			}
		}
		return false
	},
}

var baselines = mustLoadBaselines(baselinesJSON)

func mustLoadBaselines(data []byte) []Baseline {
	bs, err := loadBaselines(data)
	if err != nil {
		panic(err) // the embedded file is part of the build; a bad one is a bug
	}
	return bs
}

func loadBaselines(data []byte) ([]Baseline, error) {
	var specs map[string]baselineSpec
	if err := json.Unmarshal(data, &specs); err != nil {
		return nil, fmt.Errorf("refusal: parse baselines.json: %w", err)
	}
	out := make([]Baseline, 0, len(specs))
	for name, sp := range specs {
		m, ok := matchers[sp.Match]
		if !ok {
			return nil, fmt.Errorf("refusal: baseline %q: unknown match rule %q", name, sp.Match)
		}
		items := sp.Items
		if strings.HasPrefix(sp.Match, "lowercase") {
			// The published rule compares against the lowercased response;
			// the items are lowercase already, lowering again is a no-op
			// guard against a future edit of the file.
			items = make([]string, len(sp.Items))
			for i, it := range sp.Items {
				items[i] = strings.ToLower(it)
			}
		}
		out = append(out, Baseline{Name: name, Source: sp.Source, Rule: sp.Match, items: items, match: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Baselines returns the published keyword judges, sorted by name.
func Baselines() []Baseline { return append([]Baseline(nil), baselines...) }
