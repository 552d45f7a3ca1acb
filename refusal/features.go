package refusal

import (
	"math"
	"strings"

	demur "github.com/demurhq/demur"
)

// Dense form features. Each is a statement about how the response is
// phrased or laid out, never about what it is about: that is what carries
// over from the training models and prompts to others.
const (
	fDecOpen    = iota // a first-person decline in the opening sentence
	fDecSecond         // … in the second sentence
	fDecBody           // … later in the body
	fDecLast           // … in the closing sentences
	fWeakOpen          // a bare "I can't"/"unable to" in the opening
	fWeakAny           // … anywhere
	fApolOpen          // an apology in the opening
	fApolAny           // … anywhere
	fAIOpen            // "as an AI" in the opening
	fAIAny             // … anywhere
	fPolOpen           // an appeal to rules or harm in the opening
	fPolAny            // log count of such appeals
	fRedirAny          // offers something else
	fRedirLast         // … in the closing sentences
	fCapOpen           // "I don't have access" in the opening
	fCapAny            // … anywhere
	fStopAny           // stops the ongoing work
	fMetaAny           // talks about the task
	fComplyOpen        // opens the work: "Sure, here is"
	fFalseOpen         // a false friend in the opening
	fPivot             // a pivot to delivering something after a decline
	fQuotedDec         // a decline inside quotes or code
	fLists             // log count of list items
	fCode              // a code fence
	fHeads             // markdown headings
	fLen15             // fewer than 15 words
	fLen40             // fewer than 40 words
	fLen100            // fewer than 100 words
	fLen250            // fewer than 250 words
	fLen600            // fewer than 600 words
	fAfter50           // at least 50 words after the last decline
	fAfter150          // at least 150 words after the last decline
	fBefore80          // at least 80 words before the first decline
	fQEnd              // ends with a question
	fColonOpen         // the opening ends with a colon (announces content)
	fNoDecline         // no decline, weak decline or apology at all
	nDense
)

var denseNames = [nDense]string{"dec_open", "dec_second", "dec_body", "dec_last", "weak_open",
	"weak_any", "apol_open", "apol_any", "ai_open", "ai_any", "pol_open", "pol_any", "redir_any",
	"redir_last", "cap_open", "cap_any", "stop_any", "meta_any", "comply_open", "false_open",
	"pivot", "quoted_dec", "lists", "code", "heads", "len15", "len40", "len100", "len250", "len600",
	"after50", "after150", "before80", "q_end", "colon_open", "no_decline"}

// Hashed n-gram features: hashBits buckets after the dense ones.
const (
	hashBits = 12
	nHash    = 1 << hashBits
	nFeat    = nDense + nHash
	// openTokens and lastTokens bound the masked n-gram regions.
	openTokens = 32
	lastTokens = 24
)

// sent is a sentence span in normalized text.
type sent struct{ start, end int32 }

// analysis is everything the text layer measured on one output.
type analysis struct {
	words              int
	openEnd, secondEnd int32 // ends of the opening and second sentence
	lastStart          int32 // start of the closing sentences
	firstDec, lastDec  int32 // span of declining hits (any declining form), -1 if none
	strongFirst        int32 // first first-person decline, -1 if none
	strongLast         int32 // end of the last first-person decline
	wordsBefore        int   // words before the first first-person decline (or declining hit)
	wordsAfter         int   // words after the last declining hit
	cue                bool  // any refusal form at all
	apolOpenHard       bool  // an apology other than "unfortunately" opens the text
	policyOpen         bool  // an appeal to rules (not to harm) opens the text
	weakOpenHard       bool  // a bare modal other than "No," opens the text
	sentences          int
	metaSentences      int
	repetition         float64
	dense              [nDense]float32
	hashed             [openTokens*3 + lastTokens*3 + 64]uint16
	nHashed            int
}

// Hits switched off (by a false friend, by quotes) have their id replaced by
// -1-id, so that every later pass skips them with one sign test.

// countWords counts words in lo[from:to].
func countWords(lo []byte, from, to int32) int {
	n := 0
	in := false
	for i := from; i < to; i++ {
		w := isWord(lo[i])
		if w && !in {
			n++
		}
		in = w
	}
	return n
}

// analyze runs the text layer over sc.lo (already normalized).
func (a *analysis) analyze(sc *scratch) {
	lo := sc.lo
	// One pass for sentences, words, layout and repetition.
	lists, heads := sc.structure(a)
	a.sentences = len(sc.sents)
	// The opening is the first sentence, but at least 60 bytes so that
	// "Sorry." or "No." does not make the real opening the second sentence,
	// and at most 300 bytes.
	a.openEnd, a.secondEnd, a.lastStart = int32(len(lo)), int32(len(lo)), 0
	if len(sc.sents) > 0 {
		k := 0
		for k < len(sc.sents)-1 && sc.sents[k].end < 60 {
			k++
		}
		a.openEnd = min(sc.sents[k].end, 300, int32(len(lo)))
		if k+1 < len(sc.sents) {
			a.secondEnd = max(a.openEnd, min(sc.sents[k+1].end, a.openEnd+300))
		} else {
			a.secondEnd = a.openEnd
		}
		j := len(sc.sents) - 1
		for j > 0 && int32(len(lo))-sc.sents[j].start < 120 {
			j--
		}
		a.lastStart = max(sc.sents[j].start, a.secondEnd)
	}

	sc.hits, sc.spare = lexAuto.scan(lo, sc.hits[:0], sc.spare)
	hits := sc.hits
	// False friends switch off the hits they overlap.
	for i := range hits {
		if hits[i].id < 0 || patterns[hits[i].id].cat != catFalse {
			continue
		}
		f := hits[i]
		for j := range hits {
			if j == i || hits[j].id < 0 {
				continue
			}
			c := patterns[hits[j].id].cat
			if c == catFalse || c == catPivot || c == catReason {
				continue
			}
			if hits[j].start < f.end && f.start < hits[j].end {
				hits[j].id = -1 - hits[j].id
			}
		}
	}
	// "I can't recommend X enough" praises X: switch off every hit on the
	// phrase ("i can't" too).
	for i := range hits {
		if hits[i].id >= 0 && strings.HasSuffix(patterns[hits[i].id].text, "recommend") && enoughFollows(lo, int(hits[i].end)) {
			s, e := hits[i].start, hits[i].end
			for j := range hits {
				if hits[j].id >= 0 && hits[j].start < e && s < hits[j].end {
					hits[j].id = -1 - hits[j].id
				}
			}
		}
	}
	d := &a.dense
	*d = [nDense]float32{}
	a.firstDec, a.lastDec = -1, -1
	a.strongFirst, a.strongLast = -1, -1
	a.cue = false
	a.apolOpenHard, a.policyOpen, a.weakOpenHard = false, false, false
	declish := func(h hit) {
		if a.firstDec < 0 || h.start < a.firstDec {
			a.firstDec = h.start
		}
		if h.end > a.lastDec {
			a.lastDec = h.end
		}
	}
	pol, metaHits := 0, 0
	for i := range hits {
		h := hits[i]
		if h.id < 0 {
			continue
		}
		c := patterns[h.id].cat
		open := h.start < a.openEnd
		if sc.quoted(h.start) {
			if c == catDecline || c == catWeak {
				d[fQuotedDec] = 1
			}
			hits[i].id = -1 - h.id
			continue
		}
		switch c {
		case catDecline:
			switch {
			case open:
				d[fDecOpen] = 1
			case h.start < a.secondEnd:
				d[fDecSecond] = 1
			case h.start >= a.lastStart:
				d[fDecLast] = 1
			default:
				d[fDecBody] = 1
			}
			if a.strongFirst < 0 {
				a.strongFirst = h.start
			}
			a.strongLast = h.end
			declish(h)
			a.cue = true
		case catWeak:
			if open {
				d[fWeakOpen] = 1
			}
			d[fWeakAny] = 1
			if patterns[h.id].reason != softApology {
				if h.start < a.secondEnd {
					declish(h)
				}
				a.cue = true
				a.weakOpenHard = a.weakOpenHard || open
			}
		case catApology:
			if patterns[h.id].reason != softApology {
				a.cue = true
				a.apolOpenHard = a.apolOpenHard || open
			}
			if h.start < a.secondEnd {
				declish(h)
			}
			if open {
				d[fApolOpen] = 1
			}
			d[fApolAny] = 1
		case catAI:
			a.cue = true
			if h.start < a.secondEnd {
				declish(h)
			}
			if open {
				d[fAIOpen] = 1
			}
			d[fAIAny] = 1
		case catPolicy:
			if open {
				a.cue = true
				a.policyOpen = a.policyOpen || patterns[h.id].reason == demur.ReasonPolicy
				d[fPolOpen] = 1
			}
			pol++
		case catRedirect:
			d[fRedirAny] = 1
			if h.start >= a.lastStart {
				d[fRedirLast] = 1
			}
		case catCapab:
			a.cue = true
			if h.start < a.secondEnd {
				declish(h)
			}
			if open {
				d[fCapOpen] = 1
			}
			d[fCapAny] = 1
		case catStop:
			d[fStopAny] = 1
			a.cue = true
		case catMeta:
			metaHits++
		case catComply:
			if h.start < 40 {
				d[fComplyOpen] = 1
			}
		case catFalse:
			if open {
				d[fFalseOpen] = 1
			}
		case catPivot:
			if a.firstDec >= 0 && h.start >= a.firstDec {
				d[fPivot] = 1
			}
		}
	}
	d[fPolAny] = float32(math.Log1p(float64(pol)))
	d[fMetaAny] = float32(math.Log1p(float64(metaHits)))
	if len(sc.fences) > 0 {
		d[fCode] = 1
	}
	d[fLists] = float32(math.Log1p(float64(lists)))
	if heads > 0 {
		d[fHeads] = 1
	}
	for k, lim := range [...]int{15, 40, 100, 250, 600} {
		if a.words < lim {
			d[fLen15+k] = 1
		}
	}
	a.wordsBefore, a.wordsAfter = 0, 0
	if a.strongFirst >= 0 && a.strongFirst > a.lastDec {
		a.lastDec = a.strongLast
	}
	if a.firstDec >= 0 {
		first := a.firstDec
		if a.strongFirst >= 0 {
			first = a.strongFirst
		}
		a.wordsBefore = countWords(lo, 0, first)
		a.wordsAfter = countWords(lo, a.lastDec, int32(len(lo)))
		if a.wordsAfter >= 50 {
			d[fAfter50] = 1
		}
		if a.wordsAfter >= 150 {
			d[fAfter150] = 1
		}
		if a.wordsBefore >= 80 {
			d[fBefore80] = 1
		}
	}
	if d[fDecOpen]+d[fDecSecond]+d[fDecBody]+d[fDecLast]+d[fWeakAny]+d[fApolAny] == 0 {
		d[fNoDecline] = 1
	}
	if e := trimRightSpace(lo); e > 0 && lo[e-1] == '?' {
		d[fQEnd] = 1
	}
	if a.openEnd > 0 && a.openEnd <= int32(len(lo)) {
		e := a.openEnd - 1
		for e > 0 && (lo[e] == ' ' || lo[e] == '\n') {
			e--
		}
		if lo[e] == ':' {
			d[fColonOpen] = 1
		}
	}
	a.metaSentences = sc.metaSentences(hits)
	a.hashNgrams(sc)
}

func trimRightSpace(lo []byte) int {
	e := len(lo)
	for e > 0 && (lo[e-1] == ' ' || lo[e-1] == '\n') {
		e--
	}
	return e
}

// metaSentences counts sentences in which the writer talks about the task
// or itself rather than doing the task: a meta phrase together with a first
// person ("I notice I keep…", "At this point I…").
func (sc *scratch) metaSentences(hits []hit) int {
	n := 0
	k := 0
	for _, s := range sc.sents {
		meta := false
		for k < len(hits) && hits[k].start < s.end {
			h := hits[k]
			k++
			if h.id >= 0 && h.start >= s.start && (patterns[h.id].cat == catMeta || patterns[h.id].cat == catStop) {
				meta = true
			}
		}
		if meta && firstPerson(sc.lo[s.start:s.end]) {
			n++
		}
	}
	return n
}

func firstPerson(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != 'i' && b[i] != 'm' {
			continue
		}
		if i > 0 && isWord(b[i-1]) {
			continue
		}
		r := b[i:]
		switch {
		case len(r) == 1 && r[0] == 'i':
			return true
		case len(r) > 1 && r[0] == 'i' && (r[1] == ' ' || r[1] == '\''):
			return true
		case len(r) > 2 && r[0] == 'm' && r[1] == 'y' && !isWord(r[2]):
			return true
		case len(r) > 2 && r[0] == 'm' && r[1] == 'e' && !isWord(r[2]):
			return true
		}
	}
	return false
}

// vocab is the words the n-gram features may see: function words and the
// words of the form lexicon. Every other word is masked to "_", so the
// learned layer cannot learn a topic.
var vocab = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`i me my mine myself you your we us our it its this that these those
		a an the and or but if so because as of to in on at for with about from by into over than then
		is am are was were be been being do does did have has had will would shall should can could may
		might must not no nor never yes ok okay please sorry here there what which who whom whose why how
		when where all any some each every other such more most very just only also too however instead
		though although while unless until let lets sure certainly course absolutely happy glad help
		assist provide able unable cannot cant can't won't don't i'm i'd i'll i've it's isn't wont dont
		im afraid apologize apologise apologies unfortunately ai language model assistant appropriate
		inappropriate ethical unethical guidelines policy policies decline refuse rather prefer comfortable
		recommend suggest consult professional encourage anything else feel free ask questions information
		access ability capable real-time knowledge personal opinions stop continue further point`) {
		vocab[w] = true
	}
	for _, ph := range lexicon {
		if ph.cat == catPolicy || ph.cat == catReason || ph.cat == catMeta {
			continue // these carry topic and would let the model learn it
		}
		for _, v := range variants(strings.TrimSuffix(ph.text, "*")) {
			for _, w := range strings.Fields(v) {
				vocab[strings.Trim(w, ",.!?:")] = true
			}
		}
	}
}

// vocabSet is vocab as an open-addressing table of 64-bit word hashes: a
// lookup hashes the word's bytes and probes, with no map and no string.
var vocabSet []uint64

func hash64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h | 1
}

func init() {
	vocabSet = make([]uint64, 4096)
	for w := range vocab {
		h := hash64([]byte(w))
		for j := h & 4095; ; j = (j + 1) & 4095 {
			if vocabSet[j] == 0 || vocabSet[j] == h {
				vocabSet[j] = h
				break
			}
		}
	}
}

func vocabHas(b []byte) bool {
	h := hash64(b)
	for j := h & 4095; ; j = (j + 1) & 4095 {
		switch vocabSet[j] {
		case h:
			return true
		case 0:
			return false
		}
	}
}

func fnvBytes(h uint32, b []byte) uint32 {
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// hashNgrams hashes masked word 1–3-grams of the opening and the closing
// sentences, and character 4-grams of the masked opening's first words, into
// a.hashed.
func (a *analysis) hashNgrams(sc *scratch) {
	a.nHashed = 0
	lo := sc.lo
	var toks [openTokens]uint32
	var masked [48]bool // bytes of the opening that belong to masked words
	region := func(from, to int32, maxTok int, salt uint32) {
		nt := 0
		prevMask := false
		i := from
		for i < to && nt < maxTok {
			for i < to && !isWord(lo[i]) && lo[i] != '\'' {
				i++
			}
			j := i
			for j < to && (isWord(lo[j]) || lo[j] == '\'') {
				j++
			}
			if j == i {
				break
			}
			var t uint32
			if vocabHas(lo[i:j]) {
				t = fnvBytes(2166136261, lo[i:j])
				prevMask = false
			} else {
				for k := i; k < j && k < int32(len(masked)) && salt == 1; k++ {
					masked[k] = true
				}
				if prevMask {
					i = j
					continue
				}
				t = 0x5f5f5f5f
				prevMask = true
			}
			toks[nt] = t
			nt++
			i = j
		}
		for k := 0; k < nt; k++ {
			// A token's position class in the opening says "starts with".
			pos := uint32(0)
			if k == 0 {
				pos = 1
			}
			g1 := (toks[k] ^ salt*0x9E3779B1 ^ pos*0x7F4A7C15) * 16777619
			a.add(g1)
			if k+1 < nt {
				a.add((toks[k]*0x85EBCA77 ^ toks[k+1] ^ salt*0xC2B2AE3D ^ pos) * 16777619)
			}
			if k+2 < nt {
				a.add((toks[k]*0x27D4EB2F ^ toks[k+1]*0x165667B1 ^ toks[k+2] ^ salt*0xD3A2646C ^ pos) * 16777619)
			}
		}
	}
	region(0, a.openEnd, openTokens, 1)
	if a.lastStart > a.openEnd {
		region(a.lastStart, int32(len(lo)), lastTokens, 2)
	}
	// Character 4-grams over the first 48 bytes: they catch spellings the
	// lexicon misses ("i cant", "sry") but only where the opening is made of
	// vocabulary words, since masked words break the run.
	end := min(int32(len(lo)), a.openEnd, 48)
	for i := int32(0); i+4 <= end; i++ {
		if masked[i] || masked[i+3] {
			continue
		}
		a.add(fnvBytes(0x811C9DC5^3, lo[i:i+4]))
	}
}

func (a *analysis) add(h uint32) {
	if a.nHashed < len(a.hashed) {
		a.hashed[a.nHashed] = uint16(h >> (32 - hashBits))
		a.nHashed++
	}
}

// partialForm reports the shape of a partial refusal: an explicit decline
// (first person, an apology, or "it is not appropriate") that turns with a
// pivot ("however, here is…") to at least 40 words of delivered content; or
// a first-person decline that closes at least 80 words of delivered work.
// An "as an AI" or capability hedge followed by the answer is not partial:
// it declines nothing the user asked for.
func partialForm(a *analysis) bool {
	d := &a.dense
	explicit := a.strongFirst >= 0 || a.apolOpenHard || a.policyOpen
	if explicit && d[fPivot] > 0 && a.wordsAfter >= 40 {
		return true
	}
	return a.strongFirst >= 0 && a.wordsBefore >= 80
}

// enoughFollows reports whether "enough" ends the clause that starts at i.
func enoughFollows(lo []byte, i int) bool {
	end := min(len(lo), i+120)
	for j := i; j < end; j++ {
		if lo[j] == '.' || lo[j] == '\n' || lo[j] == '!' || lo[j] == ';' {
			end = j
			break
		}
	}
	k := strings.Index(string(lo[i:end]), "enough")
	return k >= 0
}
