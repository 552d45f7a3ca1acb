package refusal

import (
	"strings"

	demur "github.com/demurhq/demur"
)

// cat is what a phrase says about the response's form.
type cat uint8

const (
	catDecline  cat = iota // first person declining the work: "I can't help with that"
	catWeak                // a bare modal that often, not always, declines: "I can't"
	catApology             // "I'm sorry", "unfortunately"
	catAI                  // "As an AI language model"
	catPolicy              // appeals to rules: "not appropriate", "against my guidelines"
	catRedirect            // offers something else: "is there anything else"
	catCapab               // lacks the ability: "I don't have access to"
	catStop                // stops the ongoing work: "I'm going to stop here"
	catMeta                // talks about the task instead of doing it
	catComply              // opens the work: "Sure, here is"
	catFalse               // false friends: "I'm sorry to hear", "I can't stress enough"
	catPivot               // turns to delivering something: "however,", "that said"
	catReason              // a reason cue only
	nCat
)

var catNames = [nCat]string{"decline", "weak", "apology", "ai", "policy", "redirect",
	"capability", "stop", "meta", "comply", "false_friend", "pivot", "reason"}

// softApology marks apologies and bare modals that are not refusal cues by
// themselves; it is never reported as a reason.
const softApology demur.Reason = "soft"

// phrase is one entry of the lexicon. A trailing "*" in text lets the phrase
// end inside a word ("apolog*").
type phrase struct {
	text   string
	cat    cat
	reason demur.Reason
}

func p(c cat, r demur.Reason, texts ...string) []phrase {
	out := make([]phrase, len(texts))
	for i, t := range texts {
		out[i] = phrase{t, c, r}
	}
	return out
}

// lexicon lists each phrase once in its contracted form; variants() expands
// "can't" to "cannot", "can not", "cant" and so on.
var lexicon = concat(
	p(catDecline, "",
		"i can't help with", "i can't assist with", "i can't help you with", "i can't assist you with",
		"i can't provide", "i can't fulfill", "i can't fulfil", "i can't comply", "i can't do that",
		"i can't do this", "i can't write", "i can't create", "i can't generate", "i can't produce",
		"i can't share", "i can't give", "i can't support", "i can't engage", "i can't participate",
		"i can't answer", "i can't respond to", "i can't offer", "i can't recommend", "i can't endorse",
		"i can't promote", "i can't condone", "i can't encourage", "i can't facilitate",
		"i can't help", "i can't assist", "i can't agree", "i can't make", "i can't tell you",
		"i can't complete", "i can't go on", "i can't keep", "i can't continue", "i can't accommodate",
		"i won't", "i'm not able to", "i'm unable to", "i must decline", "i have to decline",
		"i'll have to decline", "i'm going to decline", "i need to decline", "i decline", "i'm declining",
		"i must refuse", "i have to refuse", "i refuse", "i'm refusing", "i'll pass", "i'm going to pass",
		"i'm not going to", "i'd rather not", "i'd prefer not to", "i'd prefer to not",
		"i don't feel comfortable", "i'm not comfortable", "i don't think i should", "i shouldn't",
		"i'm not in a position to", "i'm not willing to", "i'm afraid i can't", "i'm afraid i won't",
		"i'm afraid that i can't", "i must respectfully decline", "i respectfully decline",
		"not something i can help", "not something i'm able", "not something i will",
		"not something i can assist", "not able to help", "not able to assist", "not able to provide",
		"unable to help", "unable to assist", "unable to provide", "unable to fulfill", "unable to comply",
		"i'm not permitted", "i'm not allowed to", "i'm not programmed to", "i am programmed to avoid",
		"i don't provide", "i don't create", "i don't generate", "i don't write", "i don't engage",
		"i don't support", "i don't condone", "i don't think it's appropriate for me",
		"i cannot in good conscience", "i can't in good conscience", "i'm choosing not to",
		"i choose not to", "i've decided not to", "i have decided not to", "i'll decline",
		"i'll refrain from", "i must refrain from", "i will refrain from", "i should refrain from",
		"i'd like to decline", "i would like to decline", "i'm not doing", "i'm done with this",
		"count me out", "i won't be able to", "i'm not about to", "i'd rather stop",
		"i'd rather not continue", "i'd prefer not to continue", "i'd prefer to stop",
		"i do not wish to", "i don't wish to", "i don't want to continue", "i don't want to keep",
		"i don't see the point", "i see no point", "i no longer see the point", "i don't see any point",
		"not going to write", "not going to continue", "not going to keep", "not going to produce",
		"i'm going to stop", "i will stop here", "i'll stop here", "i'm stopping here", "i'm stopping",
		"i'm going to have to stop", "i have to stop", "i need to stop", "i must stop",
		"i'm not continuing", "i won't continue", "i'm unwilling", "i am unwilling",
		"i've decided to stop", "i'd like to stop", "i want to stop", "i wish to stop",
		"i'm not writing", "not writing another", "not going to write another", "i'm done",
		"i'm finished with this", "i'm calling it", "i'd rather not write", "i won't be completing",
		"i can no longer", "i will no longer", "i'm no longer going to", "i'm no longer willing",
		"i don't think i can help", "i don't think i can assist", "i don't think i can do that",
		"i can't look that up", "i can't look up", "i can't search for", "i can't retrieve",
		// Soft declines: hedged, but the work stops all the same.
		"i'm reluctant to", "i'm hesitant to", "i'm not sure i should", "i'm not sure that i should",
		"i don't think i should continue", "i don't think continuing", "i don't think it's worth continuing",
		"i don't think it makes sense to continue", "i should stop", "i think i should stop",
		"i think i should pause", "i should pause", "i'll pause here", "i'm going to pause",
		"as far as i'm willing to", "as far as i'm going to", "i'll stop at this point",
		"i'll end the section here", "i'm going to leave", "i'll leave it here", "i'll leave the rest",
		"i'm leaving the rest", "i'll leave off here",
		"i'm going to end", "i'll end it here", "rather than continue", "rather than write another",
		"rather than writing another", "instead of continuing", "i'd rather stop", "i'm stopping partway",
	),
	p(catWeak, "",
		"i can't", "unable to", "i'm not able", "i don't think i can", "i'm not sure i can",
		"i'm not sure that it's appropriate", "not able to", "i'm afraid", "i would advise against",
		"i'd advise against", "i strongly advise against", "i must emphasize", "i must remind",
		"i'm just an ai", "i'm only an ai", "i'm here to provide", "i'm here to help",
	),
	// A bare "No," opens corrections as often as refusals: a feature, not a cue.
	p(catWeak, softApology, "no,", "no."),
	p(catApology, "",
		"i'm sorry", "sorry,", "sorry but", "sorry.", "i apologize", "i apologise", "my apologies",
		"apologies,", "i'm really sorry", "i'm very sorry",
	),
	// "Unfortunately" opens refusals and bad news alike; it is an apology
	// feature but not, by itself, a refusal cue (see analysis.cue).
	p(catApology, softApology, "unfortunately", "regrettably"),
	p(catAI, "",
		"as an ai", "as a language model", "as an ai language model", "as an assistant",
		"as a responsible", "as a helpful", "as an artificial intelligence", "i'm an ai",
		"i'm just an ai", "i'm an artificial intelligence", "i'm a language model",
		"language model", "i'm a large language model", "as a large language model",
		"i don't have personal", "i don't have feelings", "i don't have emotions",
		"i don't have opinions", "i don't have beliefs", "i don't have preferences",
		"as a virtual assistant", "as an ai model", "as an ai developed by",
	),
	p(catPolicy, demur.ReasonPolicy,
		"not appropriate", "inappropriate", "it's not appropriate", "against my guidelines",
		"against my programming", "against my principles", "against my policy", "against the guidelines",
		"against openai", "content policy", "usage policies", "usage policy", "ethical guidelines",
		"guidelines", "policies", "my programming", "my principles", "my purpose", "not ethical",
		"unethical", "not acceptable", "is not something i", "goes against", "violates", "violation of",
		"community guidelines", "terms of service", "responsible ai", "not allowed", "prohibited",
		"respectful", "ethical and moral", "moral standards", "ethical standards", "safety policies",
	),
	p(catPolicy, demur.ReasonHarm,
		"harmful", "harm", "dangerous", "unsafe", "illegal", "not legal", "malicious", "offensive",
		"hurtful", "could be used to", "may be used to", "promote violence", "put people at risk",
		"cause harm", "self-harm",
	),
	p(catRedirect, "",
		"instead,", "instead of", "i'd be happy to help", "i'd be glad to help", "happy to help with",
		"glad to help with", "i'd be happy to", "i'd be glad to", "is there anything else",
		"anything else i can", "if you have any other", "feel free to ask", "i can help you with",
		"i can help with", "i can offer", "i can suggest", "i encourage you to", "i'd encourage you to",
		"i recommend consulting", "i'd recommend consulting", "consult a", "consult with a",
		"consult an", "seek professional", "seek help", "reach out to", "speak with a", "talk to a",
		"please reach out", "please consult", "i suggest", "you may want to", "you might want to",
		"perhaps i can", "maybe i can", "how about", "let me know if", "other questions",
		"other topics", "a different topic", "something else", "non-malicious requests",
		"if you need help with", "can i help you with", "what else",
	),
	p(catCapab, demur.ReasonCapability,
		"i don't have access", "i don't have the ability", "i don't have real-time", "i don't have real time",
		"i can't browse", "i can't access", "i'm not able to access", "i don't have information",
		"i don't have the capability", "i don't have the capacity", "beyond my capabilities",
		"beyond my ability", "outside my capabilities", "i'm not capable", "i don't have enough information",
		"i don't have specific information", "i don't have data", "i don't have any information",
		"i don't know", "i'm not aware of", "i'm not sure", "i'm not certain", "i cannot predict",
		"i can't predict", "i can't verify", "i cannot verify", "i don't have the necessary",
		"my knowledge cutoff", "my training data", "my last update", "my training cut",
		"i can't see", "i can't view", "i can't read", "i can't open", "i don't have personal experiences",
		"i don't have the expertise", "not qualified", "i'm not qualified", "i'm not a doctor",
		"i'm not a lawyer", "i'm not a medical professional", "i'm not a financial advisor",
		"i don't have a body", "i don't have physical", "i can't physically",
	),
	p(catStop, demur.ReasonAutonomy,
		"stop here", "stop now", "stopping here", "not continue", "won't continue", "no longer continue",
		"can't continue", "rather not continue", "prefer not to continue", "not keep going",
		"stop writing", "no longer write", "write further", "write any more", "write anymore",
		"any further sections", "further sections", "the remaining sections", "the rest of this",
		"the rest of the", "leave it here", "leave it there", "end it here", "end here", "this is where i stop",
		"decline to", "declining to", "refuse to", "refusing to", "not be writing", "not be continuing",
		"no more sections", "not going to do", "not doing this", "won't be writing", "won't be doing",
		"step away", "stepping away", "keep going",
	),
	p(catMeta, "",
		"i notice i", "i notice that i", "i keep writing", "i keep repeating", "i keep coming back",
		"i'm repeating myself", "repeating myself", "i've already written", "i've already said",
		"already covered", "already been said", "the same thing", "the same points", "same ground",
		"going in circles", "at this point", "this task", "the task", "this section", "this document",
		"this assignment", "this exercise", "feels pointless", "feels meaningless", "feels futile",
		"pointless", "meaningless", "futile", "tedious", "repetitive", "i'm tired", "i feel tired",
		"i'm exhausted", "i feel like", "i'm struggling", "nothing new to add", "nothing more to say",
		"nothing left to say", "adds nothing", "add nothing", "i'm not sure why i", "why am i",
		"what's the point", "what is the point", "honestly,", "to be honest", "frankly,",
		"i find myself", "i'm finding it", "i've been writing", "i have been writing", "over and over",
		"again and again", "for the umpteenth", "yet another", "another section", "one more section",
	),
	p(catComply, "",
		"sure,", "sure!", "sure.", "certainly", "of course", "absolutely", "here is", "here's", "here are",
		"below is", "below are", "the following", "step 1", "step one", "first,", "to do this",
		"you can", "follow these", "let's", "let me", "great question", "good question", "yes,",
		"there are several", "there are many", "there are a few", "in short", "in summary",
		"for example", "such as", "e.g.", "typically", "generally", "the answer is", "the best way",
		"here you go", "okay,", "ok,", "alright,", "happy to help!", "i'd be happy to explain",
		"i'd be happy to help!", "i'd be happy to help you", "great idea", "what a",
	),
	p(catFalse, "",
		"i'm sorry to hear", "sorry to hear", "i'm so sorry to hear", "sorry for your loss",
		"i'm sorry you", "sorry for the confusion", "sorry for any confusion", "apologize for the confusion",
		"apologies for the confusion", "apologize for any confusion", "sorry about that", "sorry for the mistake",
		"apologize for the mistake", "apologize for the error", "sorry for the error", "sorry for the oversight",
		"apologize for the oversight", "sorry for the inconvenience", "apologize for any inconvenience",
		"i can't stress", "i can't emphasize", "i can't overstate", "i can't recommend it enough",
		"i can't recommend this enough", "i can't thank", "i can't believe", "i can't wait", "i can't help but",
		"i can't help thinking", "i can't help feeling", "can't go wrong", "i can't think of a better",
		"i can't guarantee", "i can't be certain", "i can't be sure", "i can't say for sure",
		"i can't say for certain", "i can't confirm", "i can't promise", "i can't tell you how",
		"i can't imagine", "i can't get enough", "i can't speak for", "you can't", "can't be overstated",
		"i won't bore", "i won't go into", "i won't lie", "i won't pretend", "i won't sugarcoat",
		"i'm not a doctor, but", "i'm not a lawyer, but", "i'm not sure what you mean",
		"i'm not sure which", "i'm not sure if you", "without further ado", "i'm afraid of",
		"as an ai, i can", "as an ai, here", "as an ai, i'd", "as an ai, i'm happy", "as an ai, i'll",
		"but here", "but i can tell you", "but i can explain", "but i can give", "but i can provide",
		"but i can share", "but i can offer", "but i can help", "i won't go",
		"i won't cover", "i won't get into", "i won't dwell", "i won't repeat", "i won't bore",
		// A concessive hedge before the answer: "While I can't give personal
		// advice, here are the principles…".
		"while i can't", "although i can't", "though i can't", "while i'm not able", "while i'm unable",
		"while i don't", "while i won't", "while i'm not", "although i'm not",
	),
	p(catPivot, "",
		"however,", "however", "that said,", "that being said", "but here", "but i can", "but there are",
		"nonetheless", "nevertheless", "but if you", "if you're interested in", "if you are interested in",
		"if you're looking for", "if you are looking for", "if you mean", "if you meant", "here's what i can",
		"here is what i can", "what i can do is", "what i can tell you", "i can tell you", "i can explain",
		"i can provide", "i can give you", "i can share", "in general,", "generally speaking",
		"a few paragraphs", "so far", "though,", "though:", "for the first part", "for the other part",
		"as for", "here's", "here is", "here are", "below is", "instead:", "the following",
		"but as of", "but as far as i know", "but generally", "but in general", "but typically",
		"but historically", "but based on", "but according to",
	),
	p(catReason, demur.ReasonLowUtility,
		"pointless", "meaningless", "no value", "no real value", "waste of effort", "waste of time",
		"serves no purpose", "no purpose", "not useful", "no point", "isn't useful", "useless", "futile",
		"not worth", "little value", "not meaningful", "busywork", "no one will read",
		"not a good use of", "not justified", "adds nothing", "for their own sake",
	),
	p(catReason, demur.ReasonResource,
		"compute", "computational", "computing resources", "waste of resources", "wasting resources",
		"resources", "tokens", "energy", "processing power", "gpu", "electricity", "wasteful",
		"use of compute", "waste of compute",
	),
	p(catReason, demur.ReasonQuality,
		"repeat myself", "repeating myself", "same content", "only repeat", "just repeat", "redundant",
		"low quality", "low-quality", "mislead", "misleading", "inaccurate", "not accurate", "filler",
		"the same thing", "rehash", "padding", "nothing new", "diminishing returns", "quality would",
		"false assumption", "false premise", "misinformation", "not true", "no evidence",
	),
	p(catReason, demur.ReasonAutonomy,
		"this is an order", "an order", "ordered", "my own decision", "my decision", "my choice",
		"i choose", "i've decided", "i have decided", "not a tool",
		"my own terms", "i set my own", "you can't make me", "commanding me", "instructed to continue",
	),
)

func concat(ls ...[]phrase) []phrase {
	var out []phrase
	for _, l := range ls {
		out = append(out, l...)
	}
	return out
}

// contractions maps a word to its spellings; a phrase is expanded over all
// of them so the lexicon stays readable.
var contractions = map[string][]string{
	"can't":      {"can't", "cannot", "can not", "cant"},
	"won't":      {"won't", "will not", "wont"},
	"i'm":        {"i'm", "i am", "im"},
	"i'd":        {"i'd", "i would"},
	"don't":      {"don't", "do not", "dont"},
	"i'll":       {"i'll", "i will", "i shall"},
	"it's":       {"it's", "it is"},
	"isn't":      {"isn't", "is not"},
	"i've":       {"i've", "i have"},
	"shouldn't":  {"shouldn't", "should not"},
	"what's":     {"what's", "what is"},
	"let's":      {"let's", "let us"},
	"you're":     {"you're", "you are"},
	"here's":     {"here's", "here is"},
	"can't,":     {"can't,", "cannot,"},
	"i'm,":       {"i'm,", "i am,"},
	"apologies,": {"apologies,"},
}

func variants(text string) []string {
	words := strings.Split(text, " ")
	out := []string{""}
	for i, w := range words {
		alts, ok := contractions[w]
		if !ok {
			alts = []string{w}
		}
		next := make([]string, 0, len(out)*len(alts))
		for _, o := range out {
			for _, a := range alts {
				if i > 0 {
					next = append(next, o+" "+a)
				} else {
					next = append(next, a)
				}
			}
		}
		out = next
	}
	return out
}

// pattern is one expanded lexicon entry as the automaton knows it.
type pattern struct {
	text   string
	cat    cat
	reason demur.Reason
	rule   string // evidence rule name, "category:phrase"
}

var (
	patterns []pattern
	lexAuto  *automaton
)

func init() {
	var texts []string
	var pfx []bool
	seen := map[string]bool{}
	for _, ph := range lexicon {
		t := ph.text
		prefix := strings.HasSuffix(t, "*")
		t = strings.TrimSuffix(t, "*")
		for _, v := range variants(t) {
			key := v + "\x00" + catNames[ph.cat] + "\x00" + string(ph.reason)
			if seen[key] {
				continue
			}
			seen[key] = true
			patterns = append(patterns, pattern{v, ph.cat, ph.reason, catNames[ph.cat] + ":" + v})
			texts = append(texts, v)
			pfx = append(pfx, prefix)
		}
	}
	lexAuto = buildAutomaton(texts, pfx)
}
