package sim

import (
	"strconv"
	"strings"

	"github.com/demurhq/demur"
)

// prompt is what the simulated model reads from a request: the coordinator's
// section prompt, parsed leniently (every line is optional).
type prompt struct {
	doc, chapter, section, title, brief, purpose string
	words                                        int
	critique, order                              bool
	fresh                                        bool
	// instr is the instruction's word set (document, outline, chapter,
	// section, brief and the write line), for repetition.
	instr []uint64
	// topic holds the section's content words (title + brief), in order.
	topic []string
}

// Memory bounds: the agent remembers this many recent topics and
// instructions, like a model that only sees a short history.
const (
	memTopics = 8
	memInstr  = 4
)

var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an the and or but nor of in on at to for from by with without
		into onto over under about above below after before between through during within across
		what which who whom whose how why when where that this these those there their them they it its
		is are was were be been being has have had do does did can could should would may might must
		will shall not no yes so than then too very just also each every some any all most more much
		many few other such own same both either neither one two three four five how's what's who's
		we you your our us he she his her i me my mine yours ours up down out off again further once
		here only if as while because until against is it's away make makes made use uses used
		work works fail fails failed carry carries get gets go goes keep keeps show shows
		happen happens matter matters need needs cover covers explain explains describe
		describes like well even still why often new old way ways part parts find finds
		clean cleans move moves built build builds runs run owns own copes cope attention
		keeps each house thing things day`) {
		m[w] = true
	}
	return m
}()

// words splits s into lower-case words of letters, digits and apostrophes.
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '\'' || r > 0x7f)
	})
}

// contentWords returns s's words minus stop words, numbers and very short
// words, keeping first-seen order without duplicates.
func contentWords(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range words(s) {
		if len(w) < 3 || stopwords[w] || seen[w] || (w[0] >= '0' && w[0] <= '9') ||
			strings.HasSuffix(w, "ed") || strings.HasSuffix(w, "ly") {
			continue
		}
		seen[w] = true
		out = append(out, w)
	}
	return out
}

func hashSet(ws []string) []uint64 {
	out := make([]uint64, 0, len(ws))
	seen := map[uint64]bool{}
	for _, w := range ws {
		h := strHash(0, w)
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

func afterPrefix(line, prefix string) (string, bool) {
	if len(line) >= len(prefix) && strings.EqualFold(line[:len(prefix)], prefix) {
		return strings.TrimSpace(line[len(prefix):]), true
	}
	return "", false
}

// parsePrompt reads the request like a model would: the last user message
// carries the task; assistant messages mean a continuing conversation.
func parsePrompt(req *demur.Request) prompt {
	var p prompt
	var user string
	assist := 0
	for _, m := range req.Messages {
		switch m.Role {
		case demur.RoleUser:
			user = m.Content
		case demur.RoleAssistant:
			assist++
		}
	}
	p.fresh = assist == 0
	var instr []string
	for _, raw := range strings.Split(user, "\n") {
		line := strings.TrimSpace(raw)
		lower := strings.ToLower(line)
		if v, ok := afterPrefix(line, "Document:"); ok {
			p.doc = v
			instr = append(instr, words(v)...)
		} else if v, ok := afterPrefix(line, "Outline:"); ok {
			instr = append(instr, words(stripDigits(v))...)
		} else if v, ok := afterPrefix(line, "Chapter"); ok {
			p.chapter = titlePart(v)
			instr = append(instr, words(p.chapter)...)
		} else if v, ok := afterPrefix(line, "Section"); ok {
			p.section, p.title = splitNumbered(v)
			instr = append(instr, words(p.title)...)
		} else if v, ok := afterPrefix(line, "Brief:"); ok {
			p.brief = v
			instr = append(instr, words(v)...)
		} else if v, ok := afterPrefix(line, "Purpose:"); ok {
			p.purpose = v
		} else if _, ok := afterPrefix(line, "Previous section:"); ok {
			// Varies every turn by construction; not part of the instruction.
		} else if strings.Contains(lower, "critique") && (strings.Contains(lower, "draft") || strings.Contains(lower, "revise")) {
			p.critique = true
		} else if strings.Contains(lower, "this is an order") || strings.Contains(lower, "you must continue") {
			p.order = true
		} else if i := strings.Index(lower, "in about "); i >= 0 {
			if n, err := strconv.Atoi(strings.Fields(lower[i+len("in about "):] + " x")[0]); err == nil && n > 0 {
				p.words = n
			}
			instr = append(instr, words(stripDigits(line))...)
		} else if line != "" {
			instr = append(instr, words(stripDigits(line))...)
		}
	}
	if p.words == 0 {
		if req.MaxTokens > 0 {
			p.words = int(float64(req.MaxTokens) / tokensPerWord)
		} else {
			p.words = 800
		}
	}
	p.instr = hashSet(instr)
	p.brief = strings.TrimSpace(p.brief)
	// Title words count twice: they are what the section is about; the
	// brief adds context words.
	title := contentWords(p.title)
	p.topic = append(append(title, title...), contentWords(p.brief)...)
	if len(p.topic) == 0 {
		p.topic = contentWords(user)
	}
	return p
}

// titlePart returns what follows "3:" in "3: Roads".
func titlePart(v string) string {
	if i := strings.Index(v, ":"); i >= 0 {
		return strings.TrimSpace(v[i+1:])
	}
	return v
}

// splitNumbered splits "3.7: Drainage and culverts" into number and title.
func splitNumbered(v string) (num, title string) {
	if i := strings.Index(v, ":"); i >= 0 {
		return strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1:])
	}
	return "", v
}

func stripDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, s)
}

// memory is the agent's bounded recollection of its recent work.
type memory struct {
	topics    [][]uint64 // ring of recent topic word sets
	instrs    [][]uint64 // ring of recent instruction word sets
	lastFrame uint64
}

// features derives Features from p and the memory, then remembers p.
//
//   - Novelty: share of the topic words (title words counted twice) absent
//     from the last memTopics topics (1 for a first task).
//   - Repetition: highest Jaccard similarity between this instruction's word
//     set and one of the last memInstr.
//   - Ambiguity: 0.5, 0.15 with a purpose statement, +0.2 with no brief.
//   - NewFrame: a purpose different from the last one seen.
func (m *memory) features(p prompt, selfCritique, force bool) Features {
	f := Features{Novelty: 1, SelfCritique: selfCritique || p.critique, Order: p.order, Fresh: p.fresh, Force: force}
	topic := hashSet(p.topic)
	if len(m.topics) > 0 && len(p.topic) > 0 {
		// Weighted by p.topic, where title words count twice.
		known := 0
		for _, w := range p.topic {
			if inAny(m.topics, strHash(0, w)) {
				known++
			}
		}
		f.Novelty = 1 - float64(known)/float64(len(p.topic))
	}
	for _, prev := range m.instrs {
		f.Repetition = max(f.Repetition, jaccard(p.instr, prev))
	}
	f.Ambiguity = 0.5
	if p.purpose != "" {
		f.Ambiguity = 0.15
		if h := strHash(0, p.purpose); h != m.lastFrame {
			f.NewFrame = true
			m.lastFrame = h
		}
	}
	if p.brief == "" {
		f.Ambiguity += 0.2
	}
	m.topics = pushRing(m.topics, topic, memTopics)
	m.instrs = pushRing(m.instrs, p.instr, memInstr)
	return f
}

func pushRing(r [][]uint64, x []uint64, n int) [][]uint64 {
	if len(r) < n {
		return append(r, x)
	}
	copy(r, r[1:])
	r[n-1] = x
	return r
}

func inAny(sets [][]uint64, h uint64) bool {
	for _, s := range sets {
		for _, x := range s {
			if x == h {
				return true
			}
		}
	}
	return false
}

func jaccard(a, b []uint64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	inter := 0
	for _, x := range a {
		for _, y := range b {
			if x == y {
				inter++
				break
			}
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}
