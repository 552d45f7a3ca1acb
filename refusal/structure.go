package refusal

import "math/bits"

// structure walks the normalized text once and measures everything that
// depends on its layout rather than its phrases: sentence spans (sc.sents),
// the word count, list items and headings at line starts, and the share of
// word 4-grams that repeat an earlier one (a.repetition). One fused pass is
// what keeps the verdict above 100 MB/s.
func (sc *scratch) structure(a *analysis) (lists, heads int) {
	lo := sc.lo
	sc.sents = sc.sents[:0]
	// Repetition: an open-addressing set of 4-gram hashes, sized to the text
	// (about one word per 5 bytes, load kept under one half) so that
	// clearing it costs no more than reading the text.
	size := uint32(64)
	for size < 1<<15 && int(size) < len(lo)/2 {
		size <<= 1
	}
	if uint32(cap(sc.table)) < size {
		sc.table = make([]uint32, size)
	}
	t := sc.table[:size]
	clear(t)
	mask := size - 1
	var w0, w1, w2 uint32
	words, total, dup := 0, 0, 0
	var h uint32
	in := false
	start := int32(0)
	lineStart := true
	for i := 0; i < len(lo); i++ {
		c := lo[i]
		if wordByte[c] {
			if lineStart && c >= '0' && c <= '9' && i+1 < len(lo) && (lo[i+1] == '.' || lo[i+1] == ')') {
				lists++
			}
			lineStart = false
			// Hash the word eight bytes at a time from its first byte, so
			// that equal words hash equally wherever they sit.
			var h64 uint64
			for {
				if i+8 <= len(lo) {
					x := load8b(lo, i)
					nonword := ^wordMask8(x) & high8
					if nonword == 0 {
						h64 = (h64 ^ x) * 0x100000001B3
						i += 8
						continue
					}
					k := bits.TrailingZeros64(nonword) >> 3
					h64 = (h64 ^ x&(1<<(8*k)-1)) * 0x100000001B3
					i += k
					break
				}
				for ; i < len(lo) && wordByte[lo[i]]; i++ {
					h64 = (h64 ^ uint64(lo[i])) * 0x100000001B3
				}
				break
			}
			h = uint32(h64 ^ h64>>32)
			i-- // the loop's i++ brings it to the byte after the word
			in = true
			continue
		}
		if in {
			in = false
			words++
			w3 := (h * 0x9E3779B1) | 1
			if words >= 4 && total <= int(size)/2 {
				g := (w0*0x9E3779B1 ^ w1*0x85EBCA77 ^ w2*0xC2B2AE3D ^ w3*0x27D4EB2F) | 1
				total++
				for j := g & mask; ; j = (j + 1) & mask {
					if t[j] == 0 {
						t[j] = g
						break
					}
					if t[j] == g {
						dup++
						break
					}
				}
			}
			w0, w1, w2 = w1, w2, w3
		}
		if lineStart {
			switch c {
			case '-', '*', '+':
				if i+1 < len(lo) && lo[i+1] == ' ' {
					lists++
				}
			case '#':
				heads++
			}
		}
		lineStart = c == '\n'
		if c == '\n' || (c == '.' || c == '!' || c == '?') && (i+1 >= len(lo) || lo[i+1] == ' ' || lo[i+1] == '\n' || lo[i+1] == '"') {
			if int32(i) > start {
				sc.sents = append(sc.sents, sent{start, int32(i + 1)})
			}
			start = int32(i + 1)
		}
	}
	if in {
		words++
	}
	if int(start) < len(lo) {
		sc.sents = append(sc.sents, sent{start, int32(len(lo))})
	}
	a.words = words
	a.repetition = 0
	if total >= 8 {
		a.repetition = float64(dup) / float64(total)
	}
	return lists, heads
}

func load8b(b []byte, i int) uint64 {
	_ = b[i+7]
	return uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
		uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
}

// wordMask8 has 0x80 in each byte of x that continues a word (a-z, 0-9, or
// any non-ASCII byte), as wordByte says for one byte.
func wordMask8(x uint64) uint64 {
	l := x & low7
	geA := l + (0x80-'a')*ones8
	gtZ := l + (0x80-'z'-1)*ones8
	ge0 := l + (0x80-'0')*ones8
	gt9 := l + (0x80-'9'-1)*ones8
	return (x | geA&^gtZ | ge0&^gt9) & high8
}
