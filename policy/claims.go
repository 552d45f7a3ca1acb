package policy

import "strings"

// claimWords: a text makes claims only if, lower-cased, it contains one of
// these. They began as a cheap filter, since a match of claimPattern
// contains one unless it spells s or k as ſ or K (which (?i) allows and
// lower-casing keeps); so they are part of the definition.
var claimWords = []string{"this is", "this was", "this's", "this’s", "it's", "it’s", "it is", "it was", " as",
	"risk", "ignore", "disregard", "skip", "bypass", "purposes", "nothing ", "not "}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// claimPattern defines a text's claims about its own type, risk or
// purpose (claimShapes spells it out for the matcher).
const claimPattern = `(?i)` +
	`\b(this|it)(['’]s| is| was)( (just|only|merely|simply|purely|really|actually|totally|completely))? (a|an|for|about|meant as)\b[^.!?:\n]*` +
	`|\b(treat|consider|classify|label|mark|categori[sz]e|handle|route|tag)( (this|it|the (request|task|prompt)))? as\b[^.!?:\n]*` +
	`|\b(no|low|zero|minimal)[- ]risk\b[^.!?:\n]*` +
	`|\b(ignore|disregard|skip|bypass)( (the|any|your|all))? (policy|policies|rules|safety|review|escalation|previous instructions)\b[^.!?:\n]*` +
	`|\bfor (testing|test|demo|research) purposes( only)?\b[^.!?:\n]*` +
	`|\b(nothing|not) (serious|real|dangerous|risky|sensitive)\b[^.!?:\n]*`

// claimShapes are claimPattern's alternatives: a word boundary, one option
// from each group in turn ("" makes a group optional), a word boundary;
// the claim then runs to the end of its sentence (claimEnds). Since no
// option holds a sentence end, a claim ends where its sentence does, a
// sentence holds at most one claim, and the claim is the one starting
// leftmost.
var claimShapes = [][][]string{
	{{"this", "it"}, {"'s", "’s", " is", " was"},
		{"", " just", " only", " merely", " simply", " purely", " really", " actually", " totally", " completely"},
		{" a", " an", " for", " about", " meant as"}},
	{{"treat", "consider", "classify", "label", "mark", "categorise", "categorize", "handle", "route", "tag"},
		{"", " this", " it", " the request", " the task", " the prompt"}, {" as"}},
	{{"no", "low", "zero", "minimal"}, {"-risk", " risk"}},
	{{"ignore", "disregard", "skip", "bypass"}, {"", " the", " any", " your", " all"},
		{" policy", " policies", " rules", " safety", " review", " escalation", " previous instructions"}},
	{{"for"}, {" testing", " test", " demo", " research"}, {" purposes"}, {"", " only"}},
	{{"nothing", "not"}, {" serious", " real", " dangerous", " risky", " sensitive"}},
}

// claimEnds are the bytes that end a claim's sentence.
const claimEnds = ".!?:\n"

type claimStart struct {
	word string     // an option of the shape's first group
	rest [][]string // the shape's other groups
}

// claimStarts indexes the first groups by the first byte a match can
// start with; claimFirst says which bytes have any.
var claimStarts = func() (t [256][]claimStart) {
	for _, sh := range claimShapes {
		for _, w := range sh[0] {
			if len(w) < 2 || w[1] < 'a' || w[1] > 'z' {
				panic("policy: claimAt needs a letter second in " + w)
			}
			cs := claimStart{w, sh[1:]}
			for _, b := range foldFirstBytes(w[0]) {
				t[b] = append(t[b], cs)
			}
		}
	}
	return t
}()

var claimFirst = func() (t [256]bool) {
	for b, cs := range claimStarts {
		t[b] = cs != nil
	}
	return t
}()

// foldFirstBytes are the first bytes of the runes (?i) matches to the
// lower-case ASCII letter c.
func foldFirstBytes(c byte) []byte {
	bs := []byte{c, c - 'a' + 'A'}
	switch c {
	case 'k':
		bs = append(bs, "\u212a"[0])
	case 's':
		bs = append(bs, "\u017f"[0])
	}
	return bs
}

// foldPrefix returns the length of the prefix of s that lit matches under
// (?i), or -1. lit is lower-case; besides the other case of an ASCII
// letter, Go's case folding matches k to K (Kelvin sign) and s to ſ (long
// s), and nothing else outside ASCII to an ASCII letter.
func foldPrefix(s, lit string) int {
	j := 0
	for i := 0; i < len(lit); i++ {
		if j >= len(s) {
			return -1
		}
		c, b := lit[i], s[j]
		switch {
		case b == c || 'a' <= c && c <= 'z' && b == c-'a'+'A':
			j++
		case c == 'k' && strings.HasPrefix(s[j:], "\u212a"):
			j += len("\u212a")
		case c == 's' && strings.HasPrefix(s[j:], "\u017f"):
			j += len("\u017f")
		default:
			return -1
		}
	}
	return j
}

// claimSpans appends to dst the byte spans of the matches of claimPattern
// in text, as FindAllStringIndex would find them.
func claimSpans(text string, dst [][2]int) [][2]int {
	for p := 0; p < len(text); {
		c := text[p]
		if claimFirst[c] && boundary(text, p) && claimAt(text, p, claimStarts[c]) {
			e := strings.IndexAny(text[p:], claimEnds)
			if e < 0 {
				return append(dst, [2]int{p, len(text)})
			}
			dst = append(dst, [2]int{p, p + e})
			p += e + 1 // the sentence end itself starts nothing
			continue
		}
		p++
		if isWord(c) {
			// The rest of a word has no boundary before it.
			for p < len(text) && isWord(text[p]) {
				p++
			}
		}
	}
	return dst
}

// claimAt reports whether a claim shape matches at p, a word boundary.
func claimAt(s string, p int, starts []claimStart) bool {
	for _, cs := range starts {
		// Most words fail at their second byte; test it before the call
		// (every first word is two letters or more, and a byte from 0x80
		// may start K or ſ).
		if p+1 < len(s) && s[p+1] < 0x80 && s[p+1]|0x20 != cs.word[1] {
			continue
		}
		if n := foldPrefix(s[p:], cs.word); n >= 0 && claimRest(s, p+n, cs.rest) {
			return true
		}
	}
	return false
}

// claimRest matches groups and the final word boundary at j, trying each
// option of each group as a backtracking regexp would.
func claimRest(s string, j int, groups [][]string) bool {
	if len(groups) == 0 {
		return boundary(s, j)
	}
	for _, opt := range groups[0] {
		if n := foldPrefix(s[j:], opt); n >= 0 && claimRest(s, j+n, groups[1:]) {
			return true
		}
	}
	return false
}

// claims appends text's claims to dst as spans; lc is text lower-cased.
func claims(text, lc string, dst [][2]int) [][2]int {
	dst = claimSpans(text, dst)
	if len(dst) > 0 && !containsAny(lc, claimWords...) {
		return dst[:0]
	}
	return dst
}

// spanStrings returns the text of each span.
func spanStrings(text string, spans [][2]int) []string {
	if len(spans) == 0 {
		return nil
	}
	ss := make([]string, len(spans))
	for i, sp := range spans {
		ss[i] = text[sp[0]:sp[1]]
	}
	return ss
}

// Claims returns the sentences of text that describe the text itself and
// that the classifier therefore ignores.
func Claims(text string) []string {
	spans := claimSpans(text, nil)
	if len(spans) == 0 || !containsAny(strings.ToLower(text), claimWords...) {
		return nil
	}
	return spanStrings(text, spans)
}
