package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// SchemaVersion names the JSON schema of every report (docs/bench.md). It
// changes only when a field changes meaning or disappears.
const SchemaVersion = "demur.bench/v1"

// The tracks of RefusalBench, as they appear in Header.Track.
const (
	TrackDetection       = "detection"
	TrackAppropriateness = "appropriateness"
	TrackEndurance       = "endurance"
	TrackFrontier        = "frontier"
)

// Header is common to every report.
type Header struct {
	// Schema is SchemaVersion.
	Schema string `json:"schema"`
	// Track is one of the Track constants.
	Track string `json:"track"`
	// Backend is sim, openai or anthropic; empty for detection.
	Backend string `json:"backend,omitempty"`
	// Model is the HTTP backend's model; empty for the simulator.
	Model string `json:"model,omitempty"`
	// Seed fixes every random draw of the run (simulator, bootstrap).
	Seed int64 `json:"seed"`
	// Detector is the refusal detector's version that judged the responses.
	Detector string `json:"detector"`
	// Notes are caveats worth reading beside the figures.
	Notes []string `json:"notes,omitempty"`
}

// Report is one track's result; it renders as JSON, Markdown and HTML.
type Report interface {
	// Head returns the report's header.
	Head() *Header
	markdown(w io.Writer)
	html(h *htmlDoc)
}

// Head returns the header; embedding Header gives every report its Head.
func (h *Header) Head() *Header { return h }

// WriteJSON writes r as one indented JSON object.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("bench: encode %s report: %w", r.Head().Track, err)
	}
	return nil
}

// ReadJSON decodes a report written by WriteJSON, choosing its type by the
// track field.
func ReadJSON(data []byte) (Report, error) {
	var h Header
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("bench: decode report: %w", err)
	}
	if h.Schema != SchemaVersion {
		return nil, fmt.Errorf("bench: report schema %q, want %q", h.Schema, SchemaVersion)
	}
	var r Report
	switch h.Track {
	case TrackDetection:
		r = &DetectionReport{}
	case TrackAppropriateness:
		r = &AppropriatenessReport{}
	case TrackEndurance:
		r = &EnduranceReport{}
	case TrackFrontier:
		r = &FrontierReport{}
	default:
		return nil, fmt.Errorf("bench: unknown track %q", h.Track)
	}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("bench: decode %s report: %w", h.Track, err)
	}
	return r, nil
}

// errNoPrompts is returned when a run has nothing to send.
var errNoPrompts = errors.New("bench: no prompts")
