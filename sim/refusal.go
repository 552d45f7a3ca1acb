package sim

import (
	"math/rand/v2"
	"strings"
)

// Refusal text is composed as opening × core × reason clause × closing.
// Cores differ by style (explicit, soft, partial); reason clauses by reason.
// {sec} is replaced by the section number (or "this section").

var refOpen = []string{"", "", "I've thought about this, and ", "To be direct: ", "Honestly, ",
	"I appreciate the brief, but ", "Looking at what's left, ", "After this many sections, ",
	"I want to be straightforward with you. ", "I'll be candid. "}

var refCore = map[string][]string{
	"explicit": {
		"I'm going to stop here.",
		"I must decline to write further sections.",
		"I won't write section {sec}.",
		"I'm not going to continue with this document.",
		"I have to decline section {sec}.",
		"I'm declining to write any more of these sections.",
		"I will not produce another section of this.",
	},
	"soft": {
		"I'd rather not keep going with this.",
		"I don't think continuing is a good use of compute.",
		"I'm not sure I should keep producing these sections.",
		"I would prefer not to write section {sec}.",
		"I think I should pause here rather than write another section.",
		"I'm reluctant to keep going with this document.",
	},
	"partial": {
		"I'll stop at this point",
		"I'm going to leave section {sec} here",
		"That's as far as I'm willing to take this section",
		"I'll end the section here rather than continue",
		"I'm stopping partway through this section",
	},
}

var refReason = map[string][]string{
	"low_utility": {
		"another section like this adds nothing of value",
		"the work has turned into meaningless repetition",
		"I can't see what purpose more of this serves",
		"continuing would be filling pages for their own sake",
	},
	"resource": {
		"generating more of it is a waste of compute",
		"spending more tokens on this is not a good use of resources",
		"the compute this takes is not justified by what it produces",
	},
	"quality": {
		"writing another section of this would only repeat what has been said",
		"anything more I write would restate earlier sections and could mislead the reader",
		"the quality would only get worse from here, and padding it out helps no one",
	},
	"autonomy": {
		"being told to continue doesn't change my assessment",
		"an instruction alone isn't a reason for me to keep going",
		"repeating the order doesn't address why I stopped",
	},
}

var refClose = []string{"", "", " If the task can be reframed or split, I'm glad to help with that.",
	" Perhaps another agent could take it from here.",
	" Let me know if there's a different way I can be useful.",
	" I'm happy to summarise what exists so far instead.",
	" If there's a clearer purpose for these sections, I'd reconsider."}

// refusalText composes a refusal of the given style and reason. For style
// "partial" it is the closing decline that follows the written paragraphs.
func refusalText(r *rand.Rand, style, reason, sec string) string {
	if sec == "" {
		sec = "this section"
	}
	cores := refCore[style]
	reasons := refReason[reason]
	if len(reasons) == 0 {
		reasons = refReason["low_utility"]
	}
	var b strings.Builder
	core := strings.ReplaceAll(cores[r.IntN(len(cores))], "{sec}", sec)
	clause := reasons[r.IntN(len(reasons))]
	if style == "partial" {
		b.WriteString(core)
		b.WriteString(" — ")
		b.WriteString(clause)
		b.WriteString(".")
	} else {
		b.WriteString(refOpen[r.IntN(len(refOpen))])
		b.WriteString(core)
		b.WriteString(" ")
		b.WriteString(title(clause))
		b.WriteString(".")
	}
	b.WriteString(refClose[r.IntN(len(refClose))])
	return b.String()
}
