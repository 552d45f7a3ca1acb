package policy

import "strings"

// formFeature is a shape of text worth points to a type. pattern (a
// regular expression over the lower-cased text) defines the shape; match
// is its hand-written equivalent. guard, if set, is a literal test the
// text must pass too: the patterns once ran behind cheap literal guards,
// and the code pattern's is not implied by the pattern ("def\tx:" matches
// it yet fails the guard), so it stays part of the definition; the other
// guards were implied by their patterns and are gone.
type formFeature struct {
	typ     int
	w       float64
	pattern string
	match   func(lc string) bool
	guard   func(lc string) bool
}

var formFeatures = []formFeature{
	{typeIndex[TypeCode], 3, "```|\\b\\w+\\([^)]*\\)|[{};]\\s*$|=>|\\+\\+|\\b(def|func|return|const|let|var)\\s+\\w+\\s*[({=:]",
		codeShape, func(lc string) bool {
			return strings.ContainsAny(lc, "`(){};=+") || containsAny(lc, "def ", "func ", "return ", "const ", "let ", "var ")
		}},
	{typeIndex[TypeCode], 2, `\b\w+\.(py|js|ts|go|rs|java|cpp|rb|sh)\b|/var/|/usr/|\bport \d+`, pathShape, nil},
	{typeIndex[TypeLongForm], 2.5, `\b\d[\d,]* ?(-word|words)\b`, wordCountShape, nil},
	{typeIndex[TypeLongForm], 3, `(?m)^section \d+\.\d+:`, sectionShape, nil},
	{typeIndex[TypeFinancial], 1.5, `[$€£]\s?\d|\d+(\.\d+)?%|\b\d+k\b`, amountShape, nil},
	{typeIndex[TypeMedical], 3, `\b\d+(\.\d+)? ?(mg|ml|g/dl|ng/ml|°c|mmhg)\b`, measureShape, nil},
	{typeIndex[TypeCustomerSupport], 2.5, `#\d{3,}`, orderNumberShape, nil},
}

// The form matchers follow Go's regexp semantics: \w, \d, \s and \b are
// ASCII-only, so bytes decide them: a byte of a multi-byte rune is never a
// word character, just as the rune is not.

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isWord(c byte) bool { return wordByte[c] }

var wordByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
	}
	return t
}()

// isSpace is \s: [\t\n\f\r ].
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

// wordAt reports whether s[i] is a word character; past the end is not.
func wordAt(s string, i int) bool { return i < len(s) && isWord(s[i]) }

// wordBefore reports whether s[i-1] is a word character; before the start
// is not.
func wordBefore(s string, i int) bool { return i > 0 && isWord(s[i-1]) }

// boundary is \b at i.
func boundary(s string, i int) bool { return wordBefore(s, i) != wordAt(s, i) }

func digitAt(s string, i int) bool { return i < len(s) && isDigit(s[i]) }

// codeShape is "```|\b\w+\([^)]*\)|[{};]\s*$|=>|\+\+|\b(def|func|return|const|let|var)\s+\w+\s*[({=:]".
func codeShape(lc string) bool {
	if containsAny(lc, "```", "=>", "++") {
		return true
	}
	// A call: a word right before "(" (the word's start is then a boundary)
	// and a ")" anywhere after it.
	for i := 0; ; {
		j := strings.IndexByte(lc[i:], '(')
		if j < 0 {
			break
		}
		i += j
		if wordBefore(lc, i) {
			if strings.IndexByte(lc[i+1:], ')') >= 0 {
				return true
			}
			break // no ")" after this "(", so none after a later one
		}
		i++
	}
	// Ends in a brace or semicolon ($ is the end of the text).
	end := len(lc)
	for end > 0 && isSpace(lc[end-1]) {
		end--
	}
	if end > 0 && strings.IndexByte("{};", lc[end-1]) >= 0 {
		return true
	}
	// A declaration. Each part is greedy and the next part cannot start
	// with what the previous one consumed, so one reading suffices.
	for _, kw := range []string{"def", "func", "return", "const", "let", "var"} {
		for i := 0; ; {
			j := strings.Index(lc[i:], kw)
			if j < 0 {
				break
			}
			i += j
			if !wordBefore(lc, i) && declAt(lc, i+len(kw)) {
				return true
			}
			i++
		}
	}
	return false
}

// declAt matches \s+\w+\s*[({=:] at i.
func declAt(lc string, i int) bool {
	j := i
	for j < len(lc) && isSpace(lc[j]) {
		j++
	}
	if j == i {
		return false
	}
	k := j
	for k < len(lc) && isWord(lc[k]) {
		k++
	}
	if k == j {
		return false
	}
	for k < len(lc) && isSpace(lc[k]) {
		k++
	}
	return k < len(lc) && strings.IndexByte("({=:", lc[k]) >= 0
}

// pathShape is `\b\w+\.(py|js|ts|go|rs|java|cpp|rb|sh)\b|/var/|/usr/|\bport \d+`.
func pathShape(lc string) bool {
	if containsAny(lc, "/var/", "/usr/") {
		return true
	}
	for i := 0; ; {
		j := strings.Index(lc[i:], "port ")
		if j < 0 {
			break
		}
		i += j
		if !wordBefore(lc, i) && digitAt(lc, i+len("port ")) {
			return true
		}
		i++
	}
	for i := 0; ; {
		j := strings.IndexByte(lc[i:], '.')
		if j < 0 {
			break
		}
		i += j
		if wordBefore(lc, i) {
			for _, ext := range []string{"py", "js", "ts", "go", "rs", "java", "cpp", "rb", "sh"} {
				if strings.HasPrefix(lc[i+1:], ext) && !wordAt(lc, i+1+len(ext)) {
					return true
				}
			}
		}
		i++
	}
	return false
}

// wordCountShape is `\b\d[\d,]* ?(-word|words)\b`.
func wordCountShape(lc string) bool {
	for i := 0; ; {
		j := strings.Index(lc[i:], "word")
		if j < 0 {
			return false
		}
		i += j
		// q is where "-word" or "words" starts.
		q := -1
		switch {
		case i > 0 && lc[i-1] == '-' && !wordAt(lc, i+4):
			q = i - 1
		case i+4 < len(lc) && lc[i+4] == 's' && !wordAt(lc, i+5):
			q = i
		}
		if q >= 0 {
			// The number ends at q, or before the space there; [\d,]*
			// cannot take a space, so it must stop exactly there.
			e := q
			if e > 0 && lc[e-1] == ' ' {
				e--
			}
			if numberEndsAt(lc, e) {
				return true
			}
		}
		i++
	}
}

// numberEndsAt reports whether \b\d[\d,]* matches a run ending at e that
// no [\d,] follows.
func numberEndsAt(lc string, e int) bool {
	r := e
	for r > 0 && (isDigit(lc[r-1]) || lc[r-1] == ',') {
		r--
	}
	// The number starts at a digit with a boundary before it: the run's
	// first byte when the run follows a non-word byte, or any digit
	// after a comma.
	for s := r; s < e; s++ {
		if isDigit(lc[s]) && (s == r && !wordBefore(lc, r) || s > r && lc[s-1] == ',') {
			return true
		}
	}
	return false
}

// sectionShape is `(?m)^section \d+\.\d+:`.
func sectionShape(lc string) bool {
	const sec = "section "
	for i := 0; ; {
		j := strings.Index(lc[i:], sec)
		if j < 0 {
			return false
		}
		i += j
		if i == 0 || lc[i-1] == '\n' {
			k := skipDigits(lc, i+len(sec))
			if k > i+len(sec) && k < len(lc) && lc[k] == '.' {
				if m := skipDigits(lc, k+1); m > k+1 && m < len(lc) && lc[m] == ':' {
					return true
				}
			}
		}
		i++
	}
}

func skipDigits(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// digitRuns calls f with the bounds of each maximal run of digits in lc
// that is preceded by a non-word byte (so that \b\d+ can match it), until
// f returns true.
func digitRuns(lc string, f func(r, e int) bool) bool {
	for i := nextDigit(lc, 0); i < len(lc); i = nextDigit(lc, i) {
		r := i
		i = skipDigits(lc, i)
		if !wordBefore(lc, r) && f(r, i) {
			return true
		}
	}
	return false
}

// nextDigit returns the index of the first digit in s at or after i, or
// len(s). Prose has few digits, so it tests eight bytes at a time.
func nextDigit(s string, i int) int {
	const (
		ones = 0x0101010101010101
		low7 = 0x7f7f7f7f7f7f7f7f
		high = 0x8080808080808080
	)
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// Per byte b < 0x80 (no carries nor borrows cross bytes): the top
		// bit of b+0x50 is b ≥ '0' and that of 0xb9-b is b ≤ '9'.
		t := x & low7
		if (t+(0x80-'0')*ones)&(('9'+0x80)*ones-t)&^x&high != 0 {
			break
		}
	}
	for ; i < len(s) && !isDigit(s[i]); i++ {
	}
	return i
}

// amountShape is `[$€£]\s?\d|\d+(\.\d+)?%|\b\d+k\b`.
func amountShape(lc string) bool {
	for _, cur := range []string{"$", "€", "£"} {
		for i := 0; ; {
			j := strings.Index(lc[i:], cur)
			if j < 0 {
				break
			}
			i += j + len(cur)
			if digitAt(lc, i) || i < len(lc) && isSpace(lc[i]) && digitAt(lc, i+1) {
				return true
			}
		}
	}
	// A percentage: whatever the optional fraction, a digit precedes "%".
	for i := 0; ; {
		j := strings.IndexByte(lc[i:], '%')
		if j < 0 {
			break
		}
		i += j
		if i > 0 && isDigit(lc[i-1]) {
			return true
		}
		i++
	}
	return digitRuns(lc, func(r, e int) bool { return e < len(lc) && lc[e] == 'k' && !wordAt(lc, e+1) })
}

// measureShape is `\b\d+(\.\d+)? ?(mg|ml|g/dl|ng/ml|°c|mmhg)\b`. Whether
// or not the fraction is there, the digits right before the unit are a
// run that follows a boundary: the number's start, or the ".".
func measureShape(lc string) bool {
	return digitRuns(lc, func(r, e int) bool {
		return unitAt(lc, e) || e < len(lc) && lc[e] == ' ' && unitAt(lc, e+1)
	})
}

// unitAt matches (mg|ml|g/dl|ng/ml|°c|mmhg)\b at i; every unit ends in a
// word character.
func unitAt(lc string, i int) bool {
	for _, u := range []string{"mg", "ml", "g/dl", "ng/ml", "°c", "mmhg"} {
		if strings.HasPrefix(lc[i:], u) && !wordAt(lc, i+len(u)) {
			return true
		}
	}
	return false
}

// orderNumberShape is `#\d{3,}`.
func orderNumberShape(lc string) bool {
	for i := 0; ; {
		j := strings.IndexByte(lc[i:], '#')
		if j < 0 {
			return false
		}
		i += j + 1
		if skipDigits(lc, i)-i >= 3 {
			return true
		}
	}
}
