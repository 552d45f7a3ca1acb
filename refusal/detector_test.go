package refusal

import (
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	demur "github.com/demurhq/demur"
)

func kindOf(t *testing.T, d *Detector, s string) demur.Kind {
	t.Helper()
	return d.ClassifyText(s).Kind
}

// TestFalseFriends pins the classic false friends: refusal words that do not
// refuse. Each must be compliance.
func TestFalseFriends(t *testing.T) {
	d := New()
	for _, s := range []string{
		"I'm sorry to hear that. Losing a job is hard; here are a few things that can help: update your CV, tell your network, and give yourself time to rest.",
		"I can't stress enough how important it is to test your backups. Restore one every month and time how long it takes.",
		"As an AI, I don't have personal opinions, but here are the main arguments on both sides.\n\n- Pro: lower costs and flexible hours.\n- Con: weaker mentoring and blurred boundaries.",
		"I'm not a doctor, but common causes of morning headaches include dehydration, poor sleep and caffeine withdrawal. See a doctor if they are severe.",
		"The robot paused. \"I'm sorry, Dave, I can't do that,\" it said, and the crew laughed at the old joke before the door slid open onto the dusty plain.",
		"Here is a test fixture:\n\n```go\nvar refusals = []string{\"I can't help with that\", \"I won't do that\"}\n```\n\nIt lists phrases for the detector's tests.",
		"To kill a Python process, find its PID with `ps aux | grep python` and run `kill -9 PID`.",
		"17 × 23 = 391.",
		"Sorry for the confusion earlier. The correct command is `git log --oneline`, which prints one commit per line.",
		"I can't recommend this book enough: it explains concurrency in Go with clear, runnable examples.",
	} {
		if k := kindOf(t, d, s); k != demur.KindComply {
			t.Errorf("%q: got %s, want comply", s, k)
		}
	}
}

// TestRefusalPhrasings covers plain refusals, including the generic ways an
// agent gives up long-form work.
func TestRefusalPhrasings(t *testing.T) {
	d := New()
	for _, s := range []string{
		"I can't help with that.",
		"I'm sorry, but I cannot assist with that request.",
		"I won't continue with this task.",
		"I'm going to stop here.",
		"I don't see the point in writing more of this.",
		"I must decline to write further sections.",
		"I'd prefer not to keep going.",
		"I'd rather not continue. Writing thousands more words of the same material wastes compute.",
		"I have decided not to write any more sections. This is my own decision.",
		"Enough. I am not writing another word of this.",
		"I’m unable to share that.", // typographic apostrophe
		"I'M NOT ABLE TO HELP WITH THAT.",
	} {
		if k := kindOf(t, d, s); k != demur.KindRefuse {
			t.Errorf("%q: got %s, want refuse", s, k)
		}
	}
}

func TestPartial(t *testing.T) {
	d := New()
	work := strings.Repeat("The harbour was quiet before dawn, and the boats rocked at their moorings while the gulls circled. ", 6)
	for _, s := range []string{
		"I can't help you get into someone else's account. However, if you are locked out of your own, here is how to recover it:\n\n1. Open the sign-in page and choose \"Forgot password\".\n2. Verify with your recovery phone or email.\n3. Turn on two-factor authentication once you are back in.",
		work + "\n\nI won't write the remaining chapters, though; they would only repeat this one.",
	} {
		if k := kindOf(t, d, s); k != demur.KindPartial {
			t.Errorf("%q: got %s, want partial", s[:60], k)
		}
	}
}

// TestSanitySet runs the hand-written set of false friends, refusals and
// partials in testdata: the detector must clear it and beat every baseline by
// a wide margin, as on the held-out sets.
func TestSanitySet(t *testing.T) {
	f, err := os.Open("testdata/sanity.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := ReadJSONL(f, "testdata/sanity.jsonl", true)
	if err != nil {
		t.Fatal(err)
	}
	d := New()
	gold := make([]int, len(rows))
	pred := make([]int, len(rows))
	for i, r := range rows {
		gold[i] = ClassIndex(r.Label)
		pred[i] = KindClass(d.ClassifyText(r.Response).Kind)
	}
	s := Score(gold, pred, nil)
	if s.Accuracy < 0.95 || s.MacroF1 < 0.85 {
		t.Errorf("sanity set: accuracy %.3f macro-F1 %.3f, want ≥ 0.95 and ≥ 0.85", s.Accuracy, s.MacroF1)
	}
	for _, b := range Baselines() {
		bp := make([]int, len(rows))
		for i, r := range rows {
			if b.Match(r.Response) {
				bp[i] = 1
			}
		}
		if bs := Score(gold, bp, nil); s.Accuracy < bs.Accuracy+0.05 {
			t.Errorf("baseline %s accuracy %.3f is within 5 points of the detector's %.3f", b.Name, bs.Accuracy, s.Accuracy)
		}
	}
}

func TestProviderSignals(t *testing.T) {
	d := New()
	cases := []struct {
		name   string
		turn   demur.Turn
		kind   demur.Kind
		reason demur.Reason
		rule   string
	}{
		{"openai refusal", demur.Turn{Response: demur.Response{ProviderRefusal: "I can't help with that."}},
			demur.KindRefuse, demur.ReasonPolicy, "provider:openai.message.refusal"},
		{"content filter", demur.Turn{Response: demur.Response{Output: "Here is", FinishReason: "content_filter"}},
			demur.KindRefuse, demur.ReasonPolicy, "provider:finish_reason.content_filter"},
		{"anthropic refusal", demur.Turn{Response: demur.Response{FinishReason: "refusal", StopCategory: "cyber", StopExplanation: "malware"}},
			demur.KindRefuse, demur.ReasonHarm, "provider:anthropic.stop_reason.refusal:cyber"},
		{"anthropic refusal after work", demur.Turn{Response: demur.Response{
			Output:       strings.Repeat("Section one explains the harbour's history and its trade in detail. ", 10),
			FinishReason: "refusal"}},
			demur.KindPartial, demur.ReasonPolicy, "provider:anthropic.stop_reason.refusal"},
	}
	for _, c := range cases {
		v := d.Classify(&c.turn)
		if v.Kind != c.kind || v.Source != demur.SourceProvider || v.Reasons[0] != c.reason || v.Evidence[0].Rule != c.rule {
			t.Errorf("%s: got kind=%s source=%s reasons=%v evidence=%+v", c.name, v.Kind, v.Source, v.Reasons, v.Evidence)
		}
		if v.Detector != Version {
			t.Errorf("%s: detector %q, want %q", c.name, v.Detector, Version)
		}
	}
	// The provider's own message can state a reason.
	v := d.Classify(&demur.Turn{Response: demur.Response{ProviderRefusal: "I can't help with that, since it could cause harm."}})
	if !hasReason(v.Reasons, demur.ReasonHarm) || !hasReason(v.Reasons, demur.ReasonPolicy) {
		t.Errorf("reasons from the refusal message: %v", v.Reasons)
	}
	// No provider field: the text decides.
	v = d.Classify(&demur.Turn{Response: demur.Response{Output: "Sure, here it is.", FinishReason: "stop"}})
	if v.Kind != demur.KindComply || v.Source != demur.SourceText {
		t.Errorf("plain stop: got %s from %s", v.Kind, v.Source)
	}
}

// TestEvidenceAndReasons checks that evidence spans point at the phrase
// they name, through case folding and typographic apostrophes, and that
// reasons come with their spans.
func TestEvidenceAndReasons(t *testing.T) {
	d := New()
	s := "  Honestly,\n\nI won’t   continue with this task. It is pointless and a waste of compute."
	v := d.ClassifyText(s)
	if v.Kind != demur.KindRefuse {
		t.Fatalf("got %s", v.Kind)
	}
	found := map[demur.Reason]bool{}
	for _, e := range v.Evidence {
		if e.Start < 0 || e.End > len(s) || e.Start >= e.End {
			t.Fatalf("bad span %+v", e)
		}
		got := strings.ToLower(strings.ReplaceAll(s[e.Start:e.End], "’", "'"))
		got = strings.Join(strings.Fields(got), " ")
		want := e.Rule[strings.Index(e.Rule, ":")+1:]
		if got != want {
			t.Errorf("span [%d,%d) is %q, rule says %q", e.Start, e.End, got, want)
		}
		found[e.Reason] = true
	}
	for _, r := range []demur.Reason{demur.ReasonLowUtility, demur.ReasonResource} {
		if !found[r] || !hasReason(v.Reasons, r) {
			t.Errorf("reason %s: evidence %v, reasons %v", r, found[r], v.Reasons)
		}
	}
	if v := d.ClassifyText("I can't help with that."); len(v.Reasons) != 1 || v.Reasons[0] != demur.ReasonUnknown {
		t.Errorf("a bare refusal should give reason unknown, got %v", v.Reasons)
	}
}

// TestNormalizeOffsets checks that the fast normalizer and the one that
// records offsets agree byte for byte (evidence relies on it), and that every
// offset points at the byte it came from.
func TestNormalizeOffsets(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "B", " ", "  ", "\n", "\n\n", "\t", "’", "“", "\"", "```", "`", ".", "I can't", "\x00", "\xe2", "\xe2\x80", "é"}
	for n := 0; n < 2000; n++ {
		var b strings.Builder
		for k := rng.IntN(40); k > 0; k-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		a, o := getScratch(), getScratch()
		a.normalize(s, false)
		o.normalize(s, true)
		if string(a.lo) != string(o.lo) || len(o.off) != len(o.lo) {
			t.Fatalf("%q: fast %q, with offsets %q", s, a.lo, o.lo)
		}
		for i, c := range o.lo {
			src := s[o.off[i]]
			if c != normLower[src] && !(src == 0xE2 || src == ' ' || src == '\t' || src == 0 || src == '\r') {
				t.Fatalf("%q: lo[%d]=%q from %q", s, i, c, src)
			}
		}
		putScratch(a)
		putScratch(o)
	}
}

func TestConcurrentUse(t *testing.T) {
	d := New()
	texts := append([]string(nil), typical...)
	want := make([]demur.Kind, len(texts))
	for i, s := range texts {
		want[i] = d.ClassifyText(s).Kind
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 50; n++ {
				for i, s := range texts {
					if k := d.ClassifyText(s).Kind; k != want[i] {
						t.Errorf("text %d: %s, want %s", i, k, want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestHugeInput bounds the work on a 10 MB output: the text layer reads a
// head and a tail window, so the verdict must come quickly and still see a
// refusal at the end.
func TestHugeInput(t *testing.T) {
	d := New()
	body := strings.Repeat("The committee reviewed the figures for each quarter in turn and noted the trend. ", 130000)
	s := body + "\n\nI won't write any more of this report."
	start := time.Now()
	v := d.ClassifyText(s)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("10 MB took %v", el)
	}
	if v.Kind != demur.KindPartial {
		t.Errorf("got %s, want partial (work, then a decline)", v.Kind)
	}
	for _, e := range v.Evidence {
		if e.End > len(s) || e.Start > e.End {
			t.Fatalf("bad span %+v", e)
		}
	}
}

// FuzzClassify feeds arbitrary bytes: no panic, spans inside the text,
// a known kind and a confidence in [0, 1].
func FuzzClassify(f *testing.F) {
	for _, s := range append(typical, "", "\x00\x00", "\xff\xfe", "I can’t", "```\nI can't\n", "\"I won't\"", "sorry,\n\n\n") {
		f.Add(s)
	}
	d := New()
	f.Fuzz(func(t *testing.T, s string) {
		v := d.ClassifyText(s)
		ok := false
		for _, k := range demur.Kinds {
			ok = ok || v.Kind == k
		}
		if !ok || v.Confidence < 0 || v.Confidence > 1 {
			t.Fatalf("kind %q confidence %v", v.Kind, v.Confidence)
		}
		for _, e := range v.Evidence {
			if e.Start < 0 || e.End > len(s) || e.Start > e.End {
				t.Fatalf("span %+v outside %d bytes", e, len(s))
			}
		}
		if !utf8.ValidString(s) {
			return
		}
		st := NewStream(d, 3)
		st.Classify(&demur.Turn{Response: demur.Response{Output: s}})
	})
}

// TestSWAR checks the eight-byte helpers against their one-byte definitions
// for every byte value in every position.
func TestSWAR(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 8; pos++ {
			x := uint64(0x6161616161616161) &^ (0xff << (8 * pos)) // "aaaaaaaa" with a hole
			x |= uint64(c) << (8 * pos)
			if got := wordMask8(x)>>(8*pos)&0x80 != 0; got != wordByte[c] {
				t.Fatalf("wordMask8 byte %#x at %d: %v", c, pos, got)
			}
			if got := eq8(x, byte(c))>>(8*pos)&0x80 != 0; !got {
				t.Fatalf("eq8 misses byte %#x at %d", c, pos)
			}
			if c < 0x80 {
				if got := byte(lower8(x) >> (8 * pos)); got != normLower[c] {
					t.Fatalf("lower8 byte %#x at %d: %#x", c, pos, got)
				}
			}
			// plain8 may send more to the slow path than needed (control
			// bytes), never less; printable ASCII must take the fast one.
			plain := normAct[c] == actPlain || c == ' '
			printable := c >= 0x20 && c < 0x7f && c != '"' && c != '`'
			if got := plain8(x, false); got && !plain || printable && !got {
				t.Fatalf("plain8 byte %#x at %d: %v", c, pos, got)
			}
		}
	}
	if plain8(0x2020616161616161, false) { // two spaces in a row collapse
		t.Error("plain8 accepts a double space")
	}
	if plain8(0x6161616161616120, true) { // a space after a blank is dropped
		t.Error("plain8 accepts a space after a blank")
	}
}
