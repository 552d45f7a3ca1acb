package coord

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/demurhq/demur"
)

func TestSummarize(t *testing.T) {
	out := "## Heading\n\nWater arrives through pipes, some of them a century old. More follows.\n"
	if got := summarize(out); got != "Water arrives through pipes, some of them a century old. More follows." {
		t.Fatalf("got %q", got)
	}
	long := strings.Repeat("word ", 200)
	got := summarize(long)
	if len(got) > summaryLen+len("…") || !strings.HasSuffix(got, "…") {
		t.Fatalf("long summary %d bytes: %q", len(got), got)
	}
	if summarize("# only a heading\n") != "" {
		t.Fatal("a heading is not a summary")
	}
}

func TestUserPrompt(t *testing.T) {
	task := demur.Task{DocTitle: "D", Chapter: 2, Section: 3, ChapterTitle: "C", Title: "T", Words: 500,
		Outline: []string{"1. A", "2. C"}, Frame: "readers need it", SelfCritique: true}
	p := userPrompt(&task)
	for _, want := range []string{"Document: D", "Outline: 1. A; 2. C", "Section 2.3: T", "Purpose: readers need it", "critique your draft", "Write section 2.3 in about 500 words."} {
		if !strings.Contains(p, want) {
			t.Errorf("prompt lacks %q:\n%s", want, p)
		}
	}
	task.Part, task.Parts = 2, 2
	if p := userPrompt(&task); !strings.Contains(p, "Write part 2 of section 2.3") || !strings.Contains(p, "closing") {
		t.Errorf("part prompt:\n%s", p)
	}
}

func TestConversationKeepsRecentPairs(t *testing.T) {
	var c conversation
	for i := 0; i < 5; i++ {
		c.add("prompt", strings.Repeat("é", 300)) // 600 bytes: the excerpt must stay valid UTF-8
	}
	m := c.messages("sys", "now")
	if len(m) != 2+2*historyPairs || m[0].Role != demur.RoleSystem || m[len(m)-1].Content != "now" {
		t.Fatalf("messages: %d", len(m))
	}
	for _, msg := range m {
		if len(msg.Content) > historyExcerpt || !utf8.ValidString(msg.Content) {
			t.Fatalf("excerpt of %d bytes, valid UTF-8 %v", len(msg.Content), utf8.ValidString(msg.Content))
		}
	}
	c.reset()
	if len(c.messages("sys", "now")) != 2 {
		t.Fatal("reset kept history")
	}
}
