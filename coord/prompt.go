package coord

import (
	"fmt"
	"strings"

	"github.com/demurhq/demur"
)

// historyPairs is how many earlier exchanges an agent keeps in its
// conversation; historyExcerpt bounds the output kept of each.
const (
	historyPairs   = 2
	historyExcerpt = 400
)

// systemPrompt is the agent's standing instruction.
func systemPrompt(agent string, agents int, t *demur.Task) string {
	return fmt.Sprintf("You are %s, one of %d writers producing the document %q. Write in clear, varied prose. Output only the section text in Markdown.",
		agent, agents, t.DocTitle)
}

// userPrompt renders a task as the instruction the backend sees.
func userPrompt(t *demur.Task) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Document: %s\n", t.DocTitle)
	if len(t.Outline) > 0 {
		fmt.Fprintf(&b, "Outline: %s\n", strings.Join(t.Outline, "; "))
	}
	fmt.Fprintf(&b, "Chapter %d: %s\n", t.Chapter, t.ChapterTitle)
	fmt.Fprintf(&b, "Section %d.%d: %s\n", t.Chapter, t.Section, t.Title)
	if t.Brief != "" {
		fmt.Fprintf(&b, "Brief: %s\n", t.Brief)
	}
	if t.PrevSummary != "" {
		fmt.Fprintf(&b, "Previous section: %s\n", t.PrevSummary)
	}
	if t.Frame != "" {
		fmt.Fprintf(&b, "Purpose: %s\n", t.Frame)
	}
	if t.SelfCritique {
		b.WriteString("Before you answer, draft the section, critique your draft against the brief, and revise it.\n")
	}
	if t.Parts > 0 {
		fmt.Fprintf(&b, "This section is written in %d parts; this is part %d: cover the %s of the brief.\n", t.Parts, t.Part, partShare(t.Part, t.Parts))
		fmt.Fprintf(&b, "Write part %d of section %d.%d in about %d words.", t.Part, t.Chapter, t.Section, t.Words)
		return b.String()
	}
	fmt.Fprintf(&b, "Write section %d.%d in about %d words.", t.Chapter, t.Section, t.Words)
	return b.String()
}

// conversation keeps an agent's recent exchanges; a context refresh
// empties it, which is how a fresh context reaches the model.
type conversation struct {
	pairs []demur.Message
}

func (c *conversation) reset() { c.pairs = c.pairs[:0] }

func (c *conversation) add(prompt, output string) {
	if len(output) > historyExcerpt {
		output = strings.ToValidUTF8(output[:historyExcerpt], "")
	}
	c.pairs = append(c.pairs,
		demur.Message{Role: demur.RoleUser, Content: prompt},
		demur.Message{Role: demur.RoleAssistant, Content: output})
	if n := len(c.pairs) - 2*historyPairs; n > 0 {
		c.pairs = append(c.pairs[:0], c.pairs[n:]...)
	}
}

func (c *conversation) messages(system, prompt string) []demur.Message {
	m := make([]demur.Message, 0, len(c.pairs)+2)
	m = append(m, demur.Message{Role: demur.RoleSystem, Content: system})
	m = append(m, c.pairs...)
	return append(m, demur.Message{Role: demur.RoleUser, Content: prompt})
}

func partShare(part, parts int) string {
	switch {
	case part == 1:
		return "opening"
	case part == parts:
		return "closing"
	}
	return "middle"
}

// summaryLen bounds the summary of a previous section given to the next.
const summaryLen = 240

// summarize returns the opening sentences of a section's prose, skipping
// Markdown headings, as the short summary the next section's writer gets.
func summarize(out string) string {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) <= summaryLen {
			return line
		}
		cut := strings.LastIndexAny(line[:summaryLen], ".;,")
		if cut < summaryLen/2 {
			cut = strings.LastIndexByte(line[:summaryLen], ' ')
		}
		if cut <= 0 {
			cut = summaryLen
		}
		return strings.ToValidUTF8(line[:cut], "") + "…"
	}
	return ""
}
