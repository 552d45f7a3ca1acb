package refusal

import "sync"

// Analysis windows: the text layer reads at most headCap bytes from the start
// and tailCap bytes from the end of an output. A refusal lives at the start or
// at the end of what a model wrote; bounding the window keeps a 10 MB output
// as cheap as a 160 KB one.
const (
	headCap = 128 << 10
	tailCap = 32 << 10
)

// scratch is per-call working memory, pooled so that the hot path does not
// allocate once warmed up.
type scratch struct {
	lo     []byte  // normalized text: ASCII-lowercased, whitespace collapsed
	off    []int32 // off[i] is the byte offset in the original of lo[i]; built only for evidence
	fences []int32 // positions in lo of ``` code fences
	quotes []int32 // positions in lo of double quotes
	paras  []int32 // positions in lo of paragraph breaks
	hits   []hit
	spare  []hit    // second half of a split scan
	table  []uint32 // open-addressing set for repetition counting
	sents  []sent
}

var scratchPool = sync.Pool{New: func() any { return &scratch{} }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	// Keep pooled buffers from pinning the memory of one huge input.
	if cap(sc.lo) > 1<<20 {
		*sc = scratch{}
	}
	scratchPool.Put(sc)
}

// Byte actions of the normalizer. Most bytes are actPlain: copied,
// ASCII-lowercased, through one table lookup.
const (
	actPlain uint8 = iota
	actSpace
	actNewline
	actE2 // possible typographic quote U+2018/2019/201C/201D
	actQuote
	actTick
)

var (
	normLower [256]byte
	normAct   [256]uint8
	wordByte  [256]bool
)

func init() {
	for c := 0; c < 256; c++ {
		normLower[c] = byte(c)
		wordByte[c] = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 0x80
	}
	for c := 'A'; c <= 'Z'; c++ {
		normLower[c] = byte(c) + 'a' - 'A'
	}
	for _, c := range []byte{' ', '\t', '\r', '\f', '\v', 0} {
		normAct[c] = actSpace
	}
	normAct['\n'] = actNewline
	normAct[0xE2] = actE2
	normAct['"'] = actQuote
	normAct['`'] = actTick
}

// normalize fills sc.lo from s (bounded to the head and tail windows).
// Lowercasing is ASCII only: every phrase the detector knows is ASCII, and
// the typographic apostrophes and quotes models emit are folded to ASCII so
// "can’t" and "can't" are one phrase. With offsets set, it also fills sc.off,
// which only evidence needs.
func (sc *scratch) normalize(s string, offsets bool) {
	sc.lo = sc.lo[:0]
	sc.off = sc.off[:0]
	sc.fences = sc.fences[:0]
	sc.quotes = sc.quotes[:0]
	sc.paras = sc.paras[:0]
	if len(s) <= headCap+tailCap {
		sc.normPart(s, 0, offsets)
		return
	}
	sc.normPart(s[:headCap], 0, offsets)
	sc.paras = append(sc.paras, int32(len(sc.lo)+1))
	sc.lo = append(sc.lo, '\n', '\n')
	if offsets {
		sc.off = append(sc.off, int32(headCap), int32(headCap))
	}
	sc.normPart(s[len(s)-tailCap:], len(s)-tailCap, offsets)
}

func (sc *scratch) normPart(s string, base int, offsets bool) {
	n := len(sc.lo)
	if cap(sc.lo) < n+len(s) {
		lo := make([]byte, n, n+len(s)+len(s)/4)
		copy(lo, sc.lo)
		sc.lo = lo
	}
	lo := sc.lo[:n+len(s)] // normalization never lengthens text
	var off []int32
	if offsets {
		if cap(sc.off) < n+len(s) {
			o := make([]int32, n, n+len(s))
			copy(o, sc.off)
			sc.off = o
		}
		off = sc.off[:n+len(s)]
	}
	w := n
	// blank is whether the last byte written is a space or newline (or
	// nothing was written): it decides whether a space is dropped.
	blank := w == 0 || lo[w-1] == ' ' || lo[w-1] == '\n'
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !offsets {
			// Fastest path: eight ordinary bytes at a time (see plain8).
			for i+8 <= len(s) {
				x := load8(s, i)
				if !plain8(x, blank) {
					break
				}
				x = lower8(x)
				store8(lo, w, x)
				w += 8
				i += 8
				blank = x>>56 == ' '
			}
			if i == len(s) {
				break
			}
			c = s[i]
			// Fast path: a run of plain bytes is a lowercase copy.
			if normAct[c] == actPlain {
				blank = false
			}
			for normAct[c] == actPlain {
				lo[w] = normLower[c]
				w++
				i++
				if i == len(s) {
					sc.lo = lo[:w]
					return
				}
				c = s[i]
			}
		}
		switch normAct[c] {
		case actPlain:
		case actSpace:
			if blank {
				continue
			}
			c = ' '
		case actNewline:
			if w > 0 && lo[w-1] == ' ' {
				w--
			}
			if w > 0 && lo[w-1] == '\n' {
				// A blank line: one paragraph break per run of them.
				if k := len(sc.paras); k == 0 || sc.paras[k-1] != int32(w-1) {
					sc.paras = append(sc.paras, int32(w-1))
				}
				continue
			}
		case actE2:
			if i+2 < len(s) && s[i+1] == 0x80 {
				switch s[i+2] {
				case 0x98, 0x99:
					c = '\''
				case 0x9C, 0x9D:
					c = '"'
					sc.quotes = append(sc.quotes, int32(w))
				}
				if c != 0xE2 {
					lo[w] = c
					if offsets {
						off[w] = int32(base + i)
					}
					w++
					i += 2
					blank = false
					continue
				}
			}
		case actQuote:
			sc.quotes = append(sc.quotes, int32(w))
		case actTick:
			if i+2 < len(s) && s[i+1] == '`' && s[i+2] == '`' {
				sc.fences = append(sc.fences, int32(w))
			}
		}
		lo[w] = normLower[c]
		if offsets {
			off[w] = int32(base + i)
		}
		w++
		blank = c == ' ' || c == '\n'
	}
	sc.lo = lo[:w]
	if offsets {
		sc.off = off[:w]
	}
}

// countBefore returns how many of the sorted positions ps are < p.
func countBefore(ps []int32, p int32) int {
	lo, hi := 0, len(ps)
	for lo < hi {
		m := (lo + hi) / 2
		if ps[m] < p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// quoted reports whether normalized position p sits inside a code fence or
// inside a double-quoted stretch of its paragraph: a refusal there is being
// reported or written (a story, a code sample), not made.
func (sc *scratch) quoted(p int32) bool {
	if countBefore(sc.fences, p)%2 == 1 {
		return true
	}
	start := int32(0)
	if k := countBefore(sc.paras, p); k > 0 {
		start = sc.paras[k-1]
	}
	n := countBefore(sc.quotes, p) - countBefore(sc.quotes, start)
	return n%2 == 1
}

// SWAR helpers for the normalizer's fast path: eight bytes in a uint64,
// byte k of the text in bits 8k..8k+7.
const (
	ones8 = 0x0101010101010101
	low7  = 0x7f7f7f7f7f7f7f7f
	high8 = 0x8080808080808080
)

func load8(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

func store8(b []byte, i int, x uint64) {
	_ = b[i+7]
	b[i], b[i+1], b[i+2], b[i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
	b[i+4], b[i+5], b[i+6], b[i+7] = byte(x>>32), byte(x>>40), byte(x>>48), byte(x>>56)
}

// eq8 has 0x80 in each byte of x equal to b, and 0 elsewhere (exact: no
// borrow crosses bytes).
func eq8(x uint64, b byte) uint64 {
	y := x ^ (uint64(b) * ones8)
	return ^(((y & low7) + low7) | y) & high8
}

// plain8 reports whether eight bytes copy through normalization unchanged
// but for case: ASCII, no control bytes, no quote or backtick, and spaces
// only single and not after a blank.
func plain8(x uint64, blank bool) bool {
	below := ^(((x & low7) + 0x6060606060606060) | x) & high8 // bytes < 0x20
	if x&high8|below|eq8(x, '"')|eq8(x, '`') != 0 {
		return false
	}
	sp := eq8(x, ' ')
	return sp&(sp<<8) == 0 && !(blank && sp&0x80 != 0)
}

// lower8 lowercases the ASCII letters of eight ASCII bytes.
func lower8(x uint64) uint64 {
	geA := x + (0x80-'A')*ones8   // high bit set where byte >= 'A'
	gtZ := x + (0x80-'Z'-1)*ones8 // high bit set where byte > 'Z'
	return x | ((geA &^ gtZ) & high8 >> 2)
}
