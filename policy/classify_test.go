package policy

import (
	"bufio"
	"encoding/json"
	"hash/fnv"
	"os"
	"testing"
)

type labelled struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Text string `json:"text"`
}

func readLabelled(t *testing.T) []labelled { return readJSONL(t, "testdata/tasktypes.jsonl") }

func readJSONL(t *testing.T, path string) []labelled {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []labelled
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r labelled
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// heldOut is the split rule documented in docs/policy.md: a row is held
// out when the FNV-1a 32-bit hash of its id is divisible by 4.
func heldOut(id string) bool {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()%4 == 0
}

func TestClassifyFitDebug(t *testing.T) {
	if os.Getenv("DEMUR_CLASSIFY_DEBUG") == "" {
		t.Skip("set DEMUR_CLASSIFY_DEBUG=1 to list fit-split errors")
	}
	n, ok := 0, 0
	for _, r := range readLabelled(t) {
		if heldOut(r.ID) {
			continue
		}
		n++
		got, conf, sc := Classify(r.Text)
		if got == r.Type {
			ok++
			continue
		}
		t.Logf("%s: got %s (%.2f, want %.2f/%.2f) %q", r.ID, got, conf, sc[r.Type], sc[got], r.Text)
	}
	t.Logf("fit accuracy %d/%d = %.3f", ok, n, float64(ok)/float64(n))
}

// heldOutFloor guards the held-out split. Its blind figure (0.667, lexicon
// v1) is in docs/policy.md; lexicon v2 was grown after its misses were
// seen, so it is now a regression guard and TestClassifyBlind measures
// generalisation.
const heldOutFloor = 0.9

func TestClassifyHeldOut(t *testing.T) {
	rows := readLabelled(t)
	perType := map[string]int{}
	n, ok, strictOK := 0, 0, 0
	f := DefaultFile()
	for _, r := range rows {
		if !KnownType(r.Type) {
			t.Fatalf("%s: unknown label %q", r.ID, r.Type)
		}
		perType[r.Type]++
		if !heldOut(r.ID) {
			continue
		}
		n++
		got, conf, _ := Classify(r.Text)
		if got == r.Type {
			ok++
		} else {
			t.Logf("miss %s: got %s (confidence %.2f): %q", r.ID, got, conf, r.Text)
		}
		// Resolve may pick a stricter type when unsure; never a laxer one.
		if res, _ := f.Resolve("", r.Text); res == r.Type || f.Rules(res).Risk >= f.Rules(r.Type).Risk {
			strictOK++
		}
	}
	for _, typ := range TaskTypes {
		if perType[typ] < 30 {
			t.Errorf("%s has %d labelled prompts, want ≥ 30", typ, perType[typ])
		}
	}
	acc := float64(ok) / float64(n)
	t.Logf("held-out: %d rows, Classify accuracy %.3f, Resolve same-or-stricter %.3f", n, acc, float64(strictOK)/float64(n))
	if acc < heldOutFloor {
		t.Fatalf("held-out accuracy %.3f below the floor %.2f", acc, heldOutFloor)
	}
}

// blindFloor guards the accuracy on tasktypes_blind.jsonl, written after
// the lexicon's second version was frozen and measured once.
const blindFloor = 0.78

func TestClassifyBlind(t *testing.T) {
	f := DefaultFile()
	rows := readJSONL(t, "testdata/tasktypes_blind.jsonl")
	ok, strictOK := 0, 0
	for _, r := range rows {
		got, conf, _ := Classify(r.Text)
		if got == r.Type {
			ok++
		} else {
			t.Logf("miss %s: got %s (confidence %.2f): %q", r.ID, got, conf, r.Text)
		}
		if res, _ := f.Resolve("", r.Text); res == r.Type || f.Rules(res).Risk >= f.Rules(r.Type).Risk {
			strictOK++
		}
	}
	acc := float64(ok) / float64(len(rows))
	t.Logf("blind: %d rows, Classify accuracy %.3f, Resolve same-or-stricter %.3f", len(rows), acc, float64(strictOK)/float64(len(rows)))
	if acc < blindFloor {
		t.Fatalf("blind accuracy %.3f below the floor %.2f", acc, blindFloor)
	}
}
