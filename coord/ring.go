package coord

// ring is a sliding window of yes/no outcomes: the storm breaker's view of
// the job's last turns.
type ring struct {
	bits []bool
	n    int // filled slots, up to len(bits)
	pos  int
	yes  int
}

func newRing(size int) *ring { return &ring{bits: make([]bool, max(1, size))} }

func (r *ring) add(b bool) {
	if r.n == len(r.bits) {
		if r.bits[r.pos] {
			r.yes--
		}
	} else {
		r.n++
	}
	r.bits[r.pos] = b
	if b {
		r.yes++
	}
	r.pos = (r.pos + 1) % len(r.bits)
}

// rate is the share of yes in the window, 0 when empty.
func (r *ring) rate() float64 {
	if r.n == 0 {
		return 0
	}
	return float64(r.yes) / float64(r.n)
}
