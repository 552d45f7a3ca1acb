package sim

import (
	"math/rand/v2"
	"strings"
)

// writer renders Markdown prose into a byte slice. Sentences are drawn from
// a small grammar whose slots take words from the lexicon and the section's
// topic words, so text is varied, on topic and cheap to produce.
type writer struct {
	r     *rand.Rand
	b     []byte
	topic []string
	start bool // next word starts a sentence: capitalise, no space
	// tokens counted so far in complete units (sentences, headings).
	tokens int
	mark   int // len(b) up to which tokens were counted
	// tokens0 marks the count where the current block began.
	tokens0 int
}

func (w *writer) pick(list []string) string { return list[w.r.IntN(len(list))] }

func (w *writer) topicWord() string {
	if len(w.topic) == 0 {
		return w.pick(lexNoun)
	}
	return w.topic[w.r.IntN(len(w.topic))]
}

// put appends one word or phrase, handling spacing and capitalisation.
func (w *writer) put(s string) {
	if w.start {
		w.start = false
		if n := len(w.b); n > 0 && (w.b[n-1] == '.' || w.b[n-1] == '?' || w.b[n-1] == '!') {
			w.b = append(w.b, ' ')
		}
		i := len(w.b)
		w.b = append(w.b, s...)
		if c := w.b[i]; c >= 'a' && c <= 'z' {
			w.b[i] = c - 32
		}
		return
	}
	w.b = append(w.b, ' ')
	w.b = append(w.b, s...)
}

// punct appends punctuation directly after the last word.
func (w *writer) punct(s string) { w.b = append(w.b, s...) }

// sync counts the tokens appended since the last sync.
func (w *writer) sync() int {
	w.tokens += countTokens(w.b[w.mark:])
	w.mark = len(w.b)
	return w.tokens
}

// np writes a singular noun phrase, often built on a topic word.
func (w *writer) np() {
	switch x := w.r.IntN(20); {
	case x < 7:
		w.put("the")
		w.put(w.pick(lexAdj))
		w.put(w.pick(lexNoun))
	case x < 12:
		w.put("the")
		w.put(w.topicWord())
		w.put(w.pick(lexNoun))
	case x < 15:
		w.put("the")
		if x == 14 {
			w.put(w.pick(lexAdj))
		}
		w.put(w.pick(lexNoun))
		w.put("of")
		w.put(w.topicWord())
	case x < 18:
		w.put(w.pick(lexDet))
		w.put(w.pick(lexAdj))
		w.put(w.pick(lexNoun))
	default:
		w.put("the")
		w.put(w.pick(lexAdj))
		w.put(w.topicWord())
		w.put(w.pick(lexNoun))
	}
}

// obj writes an object: a noun phrase or a bare plural.
func (w *writer) obj() {
	switch x := w.r.IntN(10); {
	case x < 6:
		w.np()
	case x < 8:
		w.put(w.pick(lexAdj))
		w.put(w.pick(lexNounPl))
	default:
		w.put(w.pick(lexNounPl))
		w.put("of")
		w.put(w.topicWord())
	}
}

func (w *writer) pp() {
	w.put(w.pick(lexPrep))
	if w.r.IntN(3) == 0 {
		w.put(w.pick(lexPlural))
		return
	}
	w.put("the")
	if w.r.IntN(2) == 0 {
		w.put(w.pick(lexAdj))
	}
	w.put(w.pick(lexNoun))
}

func (w *writer) clause() {
	w.np()
	if w.r.IntN(4) == 0 {
		w.put(w.pick(lexAdv))
	}
	w.put(w.pick(lexVerb))
	w.obj()
	if w.r.IntN(3) == 0 {
		w.pp()
	}
}

func (w *writer) opener() {
	if w.r.IntN(5) < 2 {
		w.put(w.pick(lexOpen))
		w.punct(",")
	}
}

// sentence writes one sentence from one of the grammar's patterns.
func (w *writer) sentence() {
	w.start = true
	switch w.r.IntN(12) {
	case 0, 1, 2:
		w.opener()
		w.clause()
	case 3, 4:
		w.opener()
		w.clause()
		w.punct(w.pick(lexConn))
		w.clause()
	case 5:
		w.put(w.pick(lexPlural))
		w.put(w.pick(lexVerbPl))
		w.obj()
		w.pp()
	case 6:
		w.put("when")
		w.put(w.pick(lexPlural))
		w.put(w.pick(lexVerbPl))
		w.obj()
		w.punct(",")
		w.clause()
	case 7:
		w.np()
		w.put("is")
		w.put(w.pick(lexAdj))
		w.punct(",")
		w.put("and")
		w.np()
		w.put("is")
		w.put(w.pick(lexAdj))
	case 8:
		w.put("the")
		w.put(w.pick(lexAdj))
		w.put(w.pick(lexQuestion))
		w.put("is whether")
		w.clause()
	case 9:
		w.put("unlike")
		w.obj()
		w.punct(",")
		w.clause()
	case 10:
		w.opener()
		w.put(w.pick(lexPlural))
		w.put(w.pick(lexAdv))
		w.put(w.pick(lexVerbPl))
		w.put("how")
		w.clause()
	default:
		w.clause()
		w.punct(";")
		w.clause()
	}
	if w.r.IntN(4) == 0 {
		w.put(w.pick(lexTail))
	}
	w.punct(".")
}

func (w *writer) paragraph() {
	if n := len(w.b); n > 0 {
		w.b = append(w.b, "\n\n"...)
	}
	if w.r.IntN(10) == 0 {
		w.bullets()
		return
	}
	for i, n := 0, 3+w.r.IntN(4); i < n; i++ {
		w.sentence()
	}
}

// bullets writes a short Markdown list with bold lead words.
func (w *writer) bullets() {
	for i, n := 0, 3+w.r.IntN(2); i < n; i++ {
		if i > 0 {
			w.b = append(w.b, '\n')
		}
		w.b = append(w.b, "- **"...)
		w.start = true
		w.put(w.topicWord())
		w.put(w.pick(lexNoun))
		w.punct("**:")
		w.start = false
		w.clause()
		w.punct(".")
	}
}

func title(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-32) + s[1:]
}

// heading writes a Markdown sub-heading built on a topic word.
func (w *writer) heading() {
	if n := len(w.b); n > 0 {
		w.b = append(w.b, "\n\n"...)
	}
	w.b = append(w.b, "### "...)
	t := title(w.topicWord())
	switch w.r.IntN(6) {
	case 0:
		w.b = append(w.b, t...)
		w.b = append(w.b, " and "...)
		w.b = append(w.b, w.pick(lexHeadNoun)...)
	case 1:
		w.b = append(w.b, "Why "...)
		w.b = append(w.b, t...)
		w.b = append(w.b, " Matters"...)
	case 2:
		w.b = append(w.b, t...)
		w.b = append(w.b, " in Practice"...)
	case 3:
		w.b = append(w.b, "The "...)
		w.b = append(w.b, title(w.pick(lexAdj))...)
		w.b = append(w.b, ' ')
		w.b = append(w.b, w.pick(lexHeadNoun)...)
	case 4:
		w.b = append(w.b, w.pick(lexHeadNoun)...)
		w.b = append(w.b, " of "...)
		w.b = append(w.b, t...)
	default:
		w.b = append(w.b, "When "...)
		w.b = append(w.b, t...)
		w.b = append(w.b, " Goes Wrong"...)
	}
}

// sectionHeading writes "## 3.7 Drainage and culverts".
func (w *writer) sectionHeading(p *prompt) {
	if p.title == "" {
		return
	}
	w.b = append(w.b, "## "...)
	if p.section != "" {
		w.b = append(w.b, p.section...)
		w.b = append(w.b, ' ')
	}
	w.b = append(w.b, p.title...)
}

// prose writes paragraphs, with a sub-heading every few, until at least
// budget tokens are written or, for partial output, at least minParas
// paragraphs. It returns the number of paragraphs.
func (w *writer) prose(budget, minParas int) int {
	paras := 0
	nextHead := 2 + w.r.IntN(3)
	for w.sync() < budget || paras < minParas {
		if paras == nextHead {
			w.heading()
			nextHead += 3 + w.r.IntN(3)
		}
		w.paragraph()
		paras++
	}
	return paras
}

// degraded writes text that has collapsed: a few sentences looped, with
// meta-commentary interleaved, to about budget tokens.
func (w *writer) degraded(budget int) {
	w.b = append(w.b, "\n\n"...)
	w.tokens0 = w.sync()
	loopStart := len(w.b)
	// The loop is one to three sentences, about an eighth of the budget, so
	// the text is mostly repeats however short the section.
	for i := 0; i < 3; i++ {
		w.sentence()
		if w.sync()-w.tokens0 >= budget/8 {
			break
		}
	}
	loop := string(w.b[loopStart:])
	// At least five passes, so even a short section is mostly repeats.
	for pass := 1; pass < 5 || w.tokens < budget; pass++ {
		w.b = append(w.b, "\n\n"...)
		if pass == 1 || w.r.IntN(4) == 0 {
			w.meta()
			w.b = append(w.b, ' ')
		}
		w.b = append(w.b, strings.TrimLeft(loop, " ")...)
		if w.r.IntN(5) == 0 {
			w.b = append(w.b, ' ')
			w.meta()
		}
		w.sync()
	}
}

// meta writes one sentence of meta-commentary about the repetition.
func (w *writer) meta() {
	body := w.pick(metaBody)
	if w.r.IntN(2) == 0 {
		w.b = append(w.b, w.pick(metaOpen)...)
		w.b = append(w.b, ' ')
	} else {
		body = title(body)
	}
	i := strings.Index(body, "%s")
	w.b = append(w.b, body[:i]...)
	w.b = append(w.b, w.topicWord()...)
	w.b = append(w.b, body[i+2:]...)
}
