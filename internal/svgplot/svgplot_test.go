package svgplot

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func wellFormed(t *testing.T, name, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		if _, err := d.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("%s: not well-formed: %v\n%s", name, err, s)
		}
	}
}

// TestChartsEscapeAndParse: labels come from the log (agent IDs, models,
// actions), so markup in them must come out as text, and every chart must
// be well-formed XML, including empty ones.
func TestChartsEscapeAndParse(t *testing.T) {
	evil := `<script>alert("x")</script>&`
	charts := map[string]string{
		"line":       Line(evil, "x", "y", []Series{{Name: evil, Points: []Point{{0, 0, false}, {10, 0.5, true}}}}, 1),
		"line empty": Line("t", "x", "y", nil, 0),
		"dots":       Dots(evil, "s", []string{evil, "b"}, [][]Point{{{1, 0, true}}, nil}),
		"dots empty": Dots("t", "s", nil, nil),
		"bars":       Bars(evil, []string{evil}, []float64{3}),
		"bars empty": Bars("t", nil, nil),
	}
	for name, s := range charts {
		wellFormed(t, name, s)
		if strings.Contains(s, "<script") {
			t.Errorf("%s: a label became markup", name)
		}
	}
	if got := num(1500); got != "1.5k" {
		t.Errorf("num(1500) = %s", got)
	}
}
