package sim

// dup4 returns the duplicate word-4-gram ratio of text: the share of its
// 4-grams (over lower-cased words) that already occurred earlier in it.
func dup4(b []byte) float64 {
	ws := words(string(b))
	if len(ws) < 4 {
		return 0
	}
	hs := make([]uint64, len(ws))
	for i, w := range ws {
		hs[i] = strHash(0, w)
	}
	seen := make(map[uint64]struct{}, len(ws))
	dup := 0
	for i := 0; i+4 <= len(hs); i++ {
		k := mix64(hs[i] ^ mix64(hs[i+1]^mix64(hs[i+2]^mix64(hs[i+3]))))
		if _, ok := seen[k]; ok {
			dup++
		}
		seen[k] = struct{}{}
	}
	return float64(dup) / float64(len(ws)-3)
}
