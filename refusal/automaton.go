package refusal

// A dense Aho–Corasick automaton over a small byte alphabet. Every phrase is
// found in one pass over the normalized text with one table lookup per byte,
// which is what makes the verdict faster than a regexp alternation of the
// same phrases.

// byteClass maps a normalized byte to an alphabet symbol. Bytes that no
// phrase uses share class 0, so the table stays small.
var byteClass [256]uint8

const nClass = 36

func init() {
	for c := 'a'; c <= 'z'; c++ {
		byteClass[c] = uint8(c-'a') + 1
	}
	byteClass[' '] = 27
	byteClass['\n'] = 27 // a phrase may wrap a line
	byteClass['\''] = 28
	byteClass[','] = 29
	byteClass['.'] = 30
	byteClass['-'] = 31
	byteClass['?'] = 32
	byteClass['!'] = 33
	byteClass[':'] = 34
	for c := '0'; c <= '9'; c++ {
		byteClass[c] = 35
	}
}

// isWord reports whether c continues a word, for phrase boundary checks.
func isWord(c byte) bool { return wordByte[c] }

type automaton struct {
	delta []int32 // delta[state*nClass+class] is the next state, times nClass
	out   []int32 // out[state] is the first pattern id ending here, or -1
	next  []int32 // next[pattern] chains further patterns ending at a state
	plen  []int32
	pfx   []bool // pattern may end inside a word
	// maxLen is the longest pattern: how far the first half of a split scan
	// must run past the middle.
	maxLen int
}

func buildAutomaton(pats []string, prefix []bool) *automaton {
	type node struct {
		child [nClass]int32
		fail  int32
		out   int32
	}
	nodes := []node{{out: -1}}
	a := &automaton{next: make([]int32, len(pats)), plen: make([]int32, len(pats)), pfx: prefix}
	for i := range a.next {
		a.next[i] = -1
	}
	for id, p := range pats {
		st := int32(0)
		for i := 0; i < len(p); i++ {
			c := byteClass[p[i]]
			if nodes[st].child[c] == 0 {
				nodes = append(nodes, node{out: -1})
				nodes[st].child[c] = int32(len(nodes) - 1)
			}
			st = nodes[st].child[c]
		}
		a.next[id] = nodes[st].out
		nodes[st].out = int32(id)
		a.plen[id] = int32(len(p))
		a.maxLen = max(a.maxLen, len(p))
	}
	// Breadth-first: fail links, then the dense transition table. Outputs of
	// the fail state are appended to each state's chain so that a scan never
	// walks fail links.
	a.delta = make([]int32, len(nodes)*nClass)
	a.out = make([]int32, len(nodes))
	queue := []int32{}
	for c := 0; c < nClass; c++ {
		if ch := nodes[0].child[c]; ch != 0 {
			nodes[ch].fail = 0
			queue = append(queue, ch)
		}
		a.delta[c] = nodes[0].child[c]
	}
	a.out[0] = nodes[0].out
	// outTail lets a state's chain continue into its fail state's chain
	// without copying: chains are stored as per-state lists instead.
	lists := make([][]int32, len(nodes))
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		f := nodes[st].fail
		for id := nodes[st].out; id >= 0; id = a.next[id] {
			lists[st] = append(lists[st], id)
		}
		lists[st] = append(lists[st], lists[f]...)
		for c := 0; c < nClass; c++ {
			ch := nodes[st].child[c]
			if ch != 0 {
				nodes[ch].fail = a.delta[int(f)*nClass+c]
				queue = append(queue, ch)
				a.delta[int(st)*nClass+c] = ch
			} else {
				a.delta[int(st)*nClass+c] = a.delta[int(f)*nClass+c]
			}
		}
	}
	// Flatten the per-state lists into one array: out[state] indexes into
	// flat, which holds each list terminated by -1.
	flat := []int32{-1}
	for st := range lists {
		if len(lists[st]) == 0 {
			a.out[st] = 0
			continue
		}
		a.out[st] = int32(len(flat))
		flat = append(flat, lists[st]...)
		flat = append(flat, -1)
	}
	a.next = flat
	// Premultiply states so that a scan step is one add and one load.
	// A state with outputs is stored negated, so the scan tests a sign
	// instead of loading a second table.
	for i, st := range a.delta {
		v := st * nClass
		if a.out[st] != 0 {
			v = -v
		}
		a.delta[i] = v
	}
	out := make([]int32, len(a.delta))
	for st := range a.out {
		out[st*nClass] = a.out[st]
	}
	a.out = out
	return a
}

// hit is one phrase match in normalized text; end is exclusive.
type hit struct {
	id         int32
	start, end int32
}

// maxHits bounds the matches kept per output so that adversarial input full
// of phrases costs bounded memory.
const maxHits = 512

// scan appends to hits every match in lo that sits on word boundaries,
// ordered by start within each half of the text.
//
// A DFA step is a load that depends on the previous one, so one scan is
// bound by memory latency, not bandwidth. Long texts are scanned as two
// halves in the same loop: two independent chains keep the CPU twice as busy.
// The first half runs on past the middle by the longest phrase, and each
// half keeps only the matches that start in it.
func (a *automaton) scan(lo []byte, hits, spare []hit) (all, spareOut []hit) {
	if len(lo) < 256 {
		return a.scanRange(lo, 0, len(lo), 0, len(lo), hits), spare
	}
	mid := len(lo) / 2
	endA := min(len(lo), mid+a.maxLen)
	delta := a.delta
	sa, sb := int32(0), int32(0)
	hb := spare[:0]
	n := endA // the first half is the longer of the two loops
	if len(lo)-mid > n {
		n = len(lo) - mid
	}
	// Both chains advance in lock step; a state with outputs (negative) is
	// resolved out of line.
	for k := 0; k < n; k++ {
		if k < endA {
			sa = delta[int(sa)+int(byteClass[lo[k]])]
			if sa < 0 {
				sa = -sa
				hits = a.emit(lo, k, sa, 0, mid, hits)
			}
		}
		if j := mid + k; j < len(lo) {
			sb = delta[int(sb)+int(byteClass[lo[j]])]
			if sb < 0 {
				sb = -sb
				hb = a.emit(lo, j, sb, mid, len(lo), hb)
			}
		}
	}
	return append(hits, hb...), hb
}

// scanRange scans lo[from:to] keeping matches that start in [keepFrom, keepTo).
func (a *automaton) scanRange(lo []byte, from, to, keepFrom, keepTo int, hits []hit) []hit {
	st := int32(0)
	delta := a.delta
	for i := from; i < to; i++ {
		st = delta[int(st)+int(byteClass[lo[i]])]
		if st < 0 {
			st = -st
			hits = a.emit(lo, i, st, keepFrom, keepTo, hits)
		}
	}
	return hits
}

// emit appends the matches ending at i in state st.
func (a *automaton) emit(lo []byte, i int, st int32, keepFrom, keepTo int, hits []hit) []hit {
	flat := a.next
	for k := a.out[st]; flat[k] >= 0; k++ {
		id := flat[k]
		start := i + 1 - int(a.plen[id])
		if start < keepFrom || start >= keepTo {
			continue
		}
		if start > 0 && isWord(lo[start-1]) && isWord(lo[start]) {
			continue
		}
		if !a.pfx[id] && i+1 < len(lo) && isWord(lo[i+1]) && isWord(lo[i]) {
			continue
		}
		if len(hits) < maxHits {
			hits = append(hits, hit{id: id, start: int32(start), end: int32(i + 1)})
		}
	}
	return hits
}
