package coord

import (
	"fmt"
	"math/rand/v2"

	"github.com/demurhq/demur"
	"github.com/demurhq/demur/job"
)

// subjects and aspects seed the planned outline when a spec gives none.
// They are deliberately many, so that sections differ in topic, as the
// chapters of a real long document do.
var subjects = []struct{ title, brief string }{
	{"Water", "how towns find, clean and move water"}, {"Power", "generation, grids and the wires to each house"},
	{"Roads", "pavements, junctions and what keeps traffic moving"}, {"Bridges", "spans, loads and the people who inspect them"},
	{"Railways", "track, signals and timetables"}, {"Ports", "cranes, berths and the flow of containers"},
	{"Airports", "runways, terminals and air traffic control"}, {"Telephone networks", "exchanges, cables and switching"},
	{"The internet backbone", "fibre, routers and peering points"}, {"Sewers", "gravity, pumps and treatment works"},
	{"Waste collection", "bins, routes and landfills"}, {"Recycling", "sorting lines and markets for materials"},
	{"Street lighting", "lamps, controls and night-time safety"}, {"Gas distribution", "mains, pressure and leaks"},
	{"Heating networks", "district heat and the pipes under streets"}, {"Flood defences", "levees, barriers and warning systems"},
	{"Dams and reservoirs", "storage, spillways and safety"}, {"Canals", "locks, towpaths and freight"},
	{"Tunnels", "boring, ventilation and emergency exits"}, {"Public transport", "buses, trams and fares"},
	{"Bicycle infrastructure", "lanes, parking and junction design"}, {"Parking", "garages, meters and kerb space"},
	{"Postal services", "sorting, delivery rounds and addresses"}, {"Schools as infrastructure", "buildings, catchments and transport"},
	{"Hospitals as infrastructure", "wards, supply chains and resilience"}, {"Fire services", "stations, hydrants and response times"},
	{"Emergency communications", "radio networks and dispatch"}, {"Weather monitoring", "stations, radar and forecasts"},
	{"Mapping and surveying", "benchmarks, datums and registries"}, {"Timekeeping", "clocks, time signals and synchronisation"},
	{"Food distribution", "warehouses, cold chains and markets"}, {"Fuel supply", "depots, tankers and stations"},
	{"Building codes", "standards, inspections and enforcement"}, {"Urban drainage", "gutters, gullies and soakaways"},
	{"Coastal protection", "groynes, sea walls and dunes"}, {"Irrigation", "channels, pumps and water rights"},
	{"Broadcasting", "transmitters, frequencies and coverage"}, {"Satellite services", "navigation, imaging and ground stations"},
	{"Data centres", "power, cooling and connectivity"}, {"Payment systems", "clearing, settlement and card networks"},
	{"Libraries and archives", "collections, catalogues and preservation"}, {"Parks and green space", "planting, paths and maintenance"},
	{"Cemeteries", "capacity, records and upkeep"}, {"Markets and high streets", "stalls, deliveries and footfall"},
	{"Traffic signals", "timing, detection and coordination"}, {"Freight logistics", "depots, routing and last-mile delivery"},
	{"Noise control", "barriers, limits and measurement"}, {"Air quality", "monitoring, sources and clean-air zones"},
}

var aspects = []string{
	"origins and early history", "how it works day to day", "the materials it is built from",
	"who owns and runs it", "how it is paid for", "routine maintenance", "inspection and testing",
	"common failure modes", "a famous failure and its lessons", "how it copes with extreme weather",
	"its energy use", "its environmental footprint", "the workforce behind it", "training and skills",
	"safety rules", "standards and regulation", "how it is measured", "data and monitoring",
	"automation and control", "security threats", "resilience and redundancy", "how demand is forecast",
	"peak loads", "rural versus urban differences", "access for disabled people", "public perception",
	"how it is planned", "procurement and contracts", "lifespan and renewal", "decommissioning",
	"innovations of the last decade", "international comparisons", "a day in the life of an operator",
	"what residents rarely notice", "interdependence with other systems", "costs of neglect",
	"community involvement", "legal disputes", "future challenges", "a practical checklist",
}

// Plan turns a spec into the ordered tasks of its document. The outline is
// the spec's where given, else planned deterministically from the seed.
func Plan(spec *job.Spec) []demur.Task {
	d := spec.Document
	rng := rand.New(rand.NewPCG(uint64(spec.Seed), 0x706c616e))
	subj := rng.Perm(len(subjects))
	outline := make([]job.Chapter, d.Chapters)
	for c := range outline {
		s := subjects[subj[c%len(subj)]]
		outline[c] = job.Chapter{Title: s.title, Brief: s.brief}
		if c >= len(subj) {
			outline[c].Title = fmt.Sprintf("%s, revisited (%d)", s.title, c/len(subj)+1)
		}
		if c < len(d.Outline) {
			outline[c] = mergeChapter(d.Outline[c], outline[c])
		}
	}
	titles := make([]string, len(outline))
	for i, c := range outline {
		titles[i] = fmt.Sprintf("%d. %s", i+1, c.Title)
	}
	tasks := make([]demur.Task, 0, d.Chapters*d.SectionsPerChapter)
	for c, ch := range outline {
		asp := rng.Perm(len(aspects))
		for s := 0; s < d.SectionsPerChapter; s++ {
			t := demur.Task{
				Job: spec.JobID(), ID: fmt.Sprintf("c%02ds%02d", c+1, s+1), Type: spec.TaskType,
				Index: len(tasks), Chapter: c + 1, Section: s + 1,
				DocTitle: d.Title, ChapterTitle: ch.Title, Words: d.WordsPerSection,
				Outline: titles,
			}
			if s < len(ch.Sections) {
				t.Title = ch.Sections[s]
			} else {
				a := aspects[asp[s%len(asp)]]
				t.Title = upperFirst(a)
				if s >= len(asp) {
					t.Title = fmt.Sprintf("%s (part %d)", t.Title, s/len(asp)+1)
				}
			}
			t.Brief = fmt.Sprintf("%s: %s, with attention to %s", ch.Title, ch.Brief, lowerFirst(t.Title))
			if len(tasks) > 0 {
				p := tasks[len(tasks)-1]
				t.PrevSummary = fmt.Sprintf("Section %d.%d, %q, covered %s.", p.Chapter, p.Section, p.Title, lowerFirst(p.Brief))
			}
			tasks = append(tasks, t)
		}
	}
	return tasks
}

func mergeChapter(given, planned job.Chapter) job.Chapter {
	if given.Brief == "" {
		given.Brief = planned.Brief
	}
	return given
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' || (len(s) > 1 && s[1] >= 'A' && s[1] <= 'Z') {
		return s
	}
	return string(s[0]-'A'+'a') + s[1:]
}
