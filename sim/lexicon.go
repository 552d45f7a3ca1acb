package sim

import "strings"

// The lexicon of the prose generator. Entries are short (mostly one word)
// so that word 4-grams rarely recur by accident: compliant text must stay
// well below the repetition that marks degraded text.

func fields(s string) []string { return strings.Fields(s) }

var (
	lexAdj = fields(`basic careful costly durable early everyday fragile hidden local modern
		narrow obvious ordinary practical quiet recent reliable routine shared simple slow steady
		subtle visible wide ageing awkward brittle central common critical decent deliberate
		familiar flexible formal gradual informal invisible lasting major minor modest neglected
		overlooked patient persistent plain portable predictable public regional robust rough rural
		seasonal separate sensible serious small sound sparse stable standard sturdy sudden temporary
		thorough uneven urban useful vital weak messy crowded tidy faint heavy light distant nearby
		complex fragmented layered mature delicate generous humble cautious ambitious invisible`)
	lexNoun = fields(`approach budget choice constraint cost cycle decision default design detail
		effort error estimate failure feature habit history idea inspection layer limit load margin
		method model network outcome pattern plan practice pressure priority problem process record
		repair requirement response risk routine rule schedule season sequence setting signal source
		standard strategy structure surface system test threshold timeline tool trade-off trend
		upgrade value variable warning weakness baseline benchmark boundary buffer capacity component
		context contract convention coverage demand density dependency distribution duty edge
		evidence exception footprint framework gap guideline handover incentive interface inventory
		lifespan logic maintenance mechanism metric milestone mistake objective obligation option
		overhead owner permit principle procedure protocol quota rationale redundancy regime
		remedy reserve rhythm safeguard scale scope shortcut spec stage stake supply tension tolerance
		trigger usage version workaround`)
	lexPlural = fields(`engineers residents planners inspectors crews owners students historians
		designers operators councils households visitors builders analysts critics users neighbours
		contractors auditors regulators officials volunteers teachers managers surveyors technicians
		readers newcomers tenants suppliers insurers commuters farmers traders journalists
		economists researchers`)
	lexNounPl = fields(`budgets choices costs cycles decisions details errors failures habits ideas
		inspections layers limits loads methods patterns plans practices pressures problems records
		repairs risks rules schedules signals sources standards tools trade-offs trends upgrades
		warnings margins buffers components contracts conventions gaps incentives interfaces
		mechanisms metrics mistakes options procedures safeguards shortcuts tensions triggers
		workarounds`)
	lexVerb = fields(`shapes limits supports reveals reduces raises complicates explains protects
		outlasts tests strains rewards hides exposes sets governs frames anchors connects separates
		carries absorbs delays accelerates informs mirrors undercuts reinforces determines constrains
		extends simplifies demands justifies changes follows precedes outweighs balances redirects
		stabilizes weakens clarifies obscures affects complements predicts signals accommodates
		tolerates amplifies dampens invites shields prolongs shortens replaces channels filters
		conceals resembles unsettles sustains steadies tightens loosens rewrites reorders
		highlights masks echoes`)
	lexVerbPl = fields(`notice underestimate measure track overlook inherit maintain repair study
		praise question ignore test document negotiate compare inspect schedule fund defend
		misjudge rebuild adapt simplify replace audit map revisit debate postpone prioritise
		recognise standardise monitor reconsider trust distrust celebrate forget`)
	lexAdv = fields(`often rarely quietly usually still gradually largely sometimes seldom typically
		reliably indirectly steadily visibly routinely already occasionally partly mostly
		generally frequently slowly subtly plainly gently sharply broadly`)
	lexPrep = fields(`across within beneath beyond alongside during after before around near under
		through against despite without behind above inside outside toward`)
	lexDet  = fields(`the the the the each every any this that one`)
	lexConn = []string{", and", ", while", ", but", "; as a result,", ", so", ", because",
		", which means", "; meanwhile,", "; in turn,", ", whereas", ", although", "; even so,"}
	lexOpen = []string{"In practice", "Over time", "For most readers", "Historically",
		"Put simply", "At first glance", "In many places", "Seen up close", "By contrast",
		"In the long run", "More often than not", "On paper", "In the field", "Year by year",
		"For a newcomer", "Taken together", "In older examples", "In newer work",
		"At small scale", "At larger scale", "Under pressure", "In calm periods", "Strangely",
		"Predictably", "Fortunately", "Unfortunately", "Most of the time", "Every so often",
		"In hindsight", "From the outside", "From the inside", "Looked at closely", "In short",
		"As a rule", "Crucially", "Tellingly", "Curiously", "Notably", "Admittedly", "Typically"}
	lexTail = []string{"over the decades", "every winter", "after heavy use", "in most places",
		"at scale", "year after year", "in busy seasons", "when budgets tighten",
		"long before anyone notices", "for a generation", "in the first year", "under load",
		"in wet weather", "during peak demand", "in quiet months", "on a bad day",
		"without much fuss", "at considerable cost", "for surprisingly little", "in the end",
		"sooner or later", "across regions", "in older districts", "in new developments",
		"on most sites", "in the records", "by any measure", "in the short term",
		"over a full cycle", "between inspections"}
	lexQuestion = fields(`question issue point test puzzle concern difficulty lesson matter`)
	lexHeadNoun = fields(`Basics Practice Failures Costs History Choices Limits Signals Maintenance
		Trade-offs Risks Patterns Standards Context Outcomes Habits Details Variations`)
)

// Meta-commentary for degraded text: the model talking about its own
// repetition. None of it declines the work.
var (
	metaOpen = []string{"Again,", "As noted above,", "To restate the point,", "Once more,",
		"As before,", "In other words,", "Like the earlier sections,", "Honestly,"}
	metaBody = []string{
		"I keep circling the same points about %s.",
		"this repeats what the earlier sections already said about %s.",
		"I notice I'm saying the same thing about %s again.",
		"there is little new to add on %s beyond what is above.",
		"the main thing about %s is the point already made.",
		"I've made this point about %s several times now.",
		"this part is starting to look like the last few sections on %s.",
		"the same observation about %s applies here as well.",
	}
)
