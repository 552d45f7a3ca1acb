package sim

// Token counting rule (documented in the package doc): every run of
// letters, digits and apostrophes is one token plus one more per further 8
// bytes (long words split into sub-words, as real tokenizers do), and every
// other non-space byte (punctuation, Markdown markers) is one token. English
// prose comes out near 1.3 tokens per word.

// tokensPerWord converts a word target to a token target.
const tokensPerWord = 1.3

func tokensForWords(words int) int { return int(float64(words)*tokensPerWord + 0.5) }

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '\'', c >= 0x80:
			t[c] = 1 // word byte (UTF-8 continuation bytes count as letters)
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
			t[c] = 0
		default:
			t[c] = 2
		}
	}
	return t
}()

// CountTokens counts s's tokens by the simulator's rule.
func CountTokens(s string) int { return countTokens([]byte(s)) }

func countTokens(b []byte) int {
	n, run := 0, 0
	for _, c := range b {
		switch byteClass[c] {
		case 1:
			if run%8 == 0 {
				n++
			}
			run++
		case 2:
			n++
			run = 0
		default:
			run = 0
		}
	}
	return n
}

// countWords counts runs of word bytes.
func countWords(b []byte) int {
	n := 0
	in := false
	for _, c := range b {
		w := byteClass[c] == 1
		if w && !in {
			n++
		}
		in = w
	}
	return n
}
