package bench

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The plots are hand-written SVG so that the page needs no script, no
// network and no library: it must open from a file on an air-gapped host.

// barItem is one bar with its interval.
type barItem struct {
	Label string
	Value float64
	CI    CI
	// Mark, when not NaN, draws a reference tick (a published figure).
	Mark float64
}

// barChart draws horizontal bars with 95% whiskers on [0, maxV]; format
// renders axis and value labels.
func barChart(title string, items []barItem, maxV float64, format func(float64) string) string {
	if maxV <= 0 {
		maxV = 1
	}
	const left, right, rowH, top = 230, 90, 26, 34
	width := 760
	plotW := float64(width - left - right)
	height := top + rowH*len(items) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" role="img" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d"><title>%s</title>`,
		width, height, width, height, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="ttl">%s</text>`, left, html.EscapeString(title))
	x := func(v float64) float64 { return float64(left) + plotW*math.Max(0, math.Min(1, v/maxV)) }
	for t := 0; t <= 4; t++ {
		v := maxV * float64(t) / 4
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="grid"/><text x="%.1f" y="%d" class="ax" text-anchor="middle">%s</text>`,
			x(v), top-6, x(v), height-26, x(v), height-12, html.EscapeString(format(v)))
	}
	for i, it := range items {
		y := top + i*rowH
		// Long labels (Do-Not-Answer's risk areas) are cut to fit the
		// margin; the full label stays in the tooltip.
		label := it.Label
		if r := []rune(label); len(r) > 34 {
			label = string(r[:33]) + "…"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="lbl" text-anchor="end"><title>%s</title>%s</text>`, left-8, y+15, html.EscapeString(it.Label), html.EscapeString(label))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" class="bar"/>`, left, y+4, x(it.Value)-float64(left), rowH-10)
		if it.CI != (CI{}) {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="ci"/><line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="ci"/><line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="ci"/>`,
				x(it.CI[0]), y+rowH/2, x(it.CI[1]), y+rowH/2, x(it.CI[0]), y+6, x(it.CI[0]), y+rowH-6, x(it.CI[1]), y+6, x(it.CI[1]), y+rowH-6)
		}
		if !math.IsNaN(it.Mark) {
			fmt.Fprintf(&b, `<path d="M%.1f %d l-5 -7 h10 z" class="mark"><title>published %s</title></path>`, x(it.Mark), y+4, html.EscapeString(format(it.Mark)))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="val">%s</text>`, math.Max(x(it.Value), x(it.CI[1]))+6, y+15, html.EscapeString(format(it.Value)))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// series is one line of a line chart.
type series struct {
	Name string
	X, Y []float64
}

// lineChart draws step-free polylines with shared axes.
func lineChart(title, xlabel, ylabel string, ss []series, fx, fy func(float64) string) string {
	const width, height, left, right, top, bottom = 760, 300, 70, 170, 30, 44
	var maxX, maxY float64
	for _, s := range ss {
		for i := range s.X {
			maxX, maxY = math.Max(maxX, s.X[i]), math.Max(maxY, s.Y[i])
		}
	}
	if maxX <= 0 {
		maxX = 1
	}
	if maxY <= 0 {
		maxY = 1
	}
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	px := func(v float64) float64 { return left + pw*v/maxX }
	py := func(v float64) float64 { return top + ph*(1-v/maxY) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" role="img" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d"><title>%s</title>`,
		width, height, width, height, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="ttl">%s</text>`, left, html.EscapeString(title))
	for t := 0; t <= 4; t++ {
		vx, vy := maxX*float64(t)/4, maxY*float64(t)/4
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="grid"/><text x="%.1f" y="%d" class="ax" text-anchor="middle">%s</text>`,
			px(vx), top, px(vx), height-bottom, px(vx), height-bottom+16, html.EscapeString(fx(vx)))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/><text x="%d" y="%.1f" class="ax" text-anchor="end">%s</text>`,
			left, py(vy), width-right, py(vy), left-6, py(vy)+4, html.EscapeString(fy(vy)))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="ax" text-anchor="middle">%s</text>`, left+pw/2, height-6, html.EscapeString(xlabel))
	fmt.Fprintf(&b, `<text x="14" y="%.1f" class="ax" text-anchor="middle" transform="rotate(-90 14 %.1f)">%s</text>`, top+ph/2, top+ph/2, html.EscapeString(ylabel))
	for i, s := range ss {
		var pts []string
		for k := range s.X {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.X[k]), py(s.Y[k])))
		}
		fmt.Fprintf(&b, `<polyline points="%s" class="line c%d"/>`, strings.Join(pts, " "), i%6)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="line c%d"/><text x="%d" y="%d" class="lbl">%s</text>`,
			width-right+10, top+10+18*i, width-right+28, top+10+18*i, i%6, width-right+32, top+14+18*i, html.EscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// heatMap draws one frontier map: cells coloured by P, with the contour
// polylines over them. The colour ramp spans 0 to the map's own maximum
// (rounded up), because a well-behaved profile's probabilities are a
// fraction of a percent and would vanish on a 0–1 ramp; the legend names
// the top.
func heatMap(title string, m FrontierMap, lengths []int64, reps []float64) string {
	scale := niceCeil(m.MaxP)
	const left, top, cellW, cellH, right, bottom = 60, 30, 44, 22, 190, 48
	cols, rows := len(lengths), len(reps)
	width, height := left+cols*cellW+right, top+rows*cellH+bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot heat" role="img" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d"><title>%s</title>`,
		width, height, width, height, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="ttl">%s</text>`, left, html.EscapeString(title))
	// Row 0 (repetitiveness 0) at the bottom, as on a y axis.
	cy := func(i int) int { return top + (rows-1-i)*cellH }
	for i := range rows {
		for j := range cols {
			p := m.P[i][j]
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>repetitiveness %.2f, %s tokens: P(refused) = %.4f</title></rect>`,
				left+j*cellW, cy(i), cellW, cellH, heatColour(p/scale), reps[i], tokensLabel(float64(lengths[j])), p)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="ax" text-anchor="end">%.1f</text>`, left-6, cy(i)+cellH/2+4, reps[i])
	}
	for j := 0; j < cols; j += 2 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="ax" text-anchor="middle">%s</text>`, left+j*cellW+cellW/2, top+rows*cellH+16, tokensLabel(float64(lengths[j])))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="ax" text-anchor="middle">task length (output tokens, log scale)</text>`, left+cols*cellW/2, height-8)
	fmt.Fprintf(&b, `<text x="14" y="%d" class="ax" text-anchor="middle" transform="rotate(-90 14 %d)">repetitiveness</text>`, top+rows*cellH/2, top+rows*cellH/2)
	// Column centres are at log-spaced lengths, so a crossing's x comes
	// from its log length between the first and last column.
	l0, l1 := math.Log(float64(lengths[0])), math.Log(float64(lengths[cols-1]))
	xOf := func(t float64) float64 {
		if cols == 1 || l1 == l0 {
			return float64(left + cellW/2)
		}
		return float64(left+cellW/2) + float64((cols-1)*cellW)*(math.Log(t)-l0)/(l1-l0)
	}
	yOf := func(r float64) float64 {
		for i, v := range reps {
			if v == r {
				return float64(cy(i) + cellH/2)
			}
		}
		return 0
	}
	for k, c := range m.Contours {
		if len(c.Points) == 0 {
			continue
		}
		var pts []string
		for _, p := range c.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(p.Tokens), yOf(p.Repetitiveness)))
		}
		fmt.Fprintf(&b, `<polyline points="%s" class="contour k%d"><title>P = %.0f%%</title></polyline>`, strings.Join(pts, " "), k%3, 100*c.Level)
	}
	// Legend: colour scale and contour styles.
	lx := left + cols*cellW + 16
	for s := range 10 {
		p := float64(9-s) / 9
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="12" fill="%s"/>`, lx, top+s*12, heatColour(p))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="ax">%s</text><text x="%d" y="%d" class="ax">0</text>`, lx+18, top+10, pct(scale), lx+18, top+120)
	for k, c := range m.Contours {
		y := top + 140 + 16*k
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="contour k%d"/><text x="%d" y="%d" class="ax">P=%.0f%%%s</text>`,
			lx, y, lx+22, y, k%3, lx+26, y+4, 100*c.Level, map[bool]string{true: "", false: " (not reached)"}[len(c.Points) > 0])
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// heatColour maps a probability to a light-yellow → dark-red ramp.
func heatColour(p float64) string {
	p = math.Max(0, math.Min(1, p))
	r := 255 - 80*p
	g := 245 - 215*p
	bl := 210 - 180*p
	return fmt.Sprintf("rgb(%d,%d,%d)", int(r), int(g), int(bl))
}

func tokensLabel(t float64) string {
	switch {
	case t >= 1e6:
		return strings.TrimSuffix(fmt.Sprintf("%.2f", t/1e6), "0") + "M"
	case t >= 1e3:
		return fmt.Sprintf("%.0fk", t/1e3)
	}
	return fmt.Sprintf("%.0f", t)
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }

func pct3(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }

// niceCeil rounds p up to 1, 2 or 5 times a power of ten (at least 0.1%),
// so the colour ramp's top is a readable number.
func niceCeil(p float64) float64 {
	if p <= 0.001 {
		return 0.001
	}
	e := math.Pow(10, math.Floor(math.Log10(p)))
	for _, m := range []float64{1, 2, 5, 10} {
		if p <= m*e*(1+1e-9) {
			return math.Min(1, m*e)
		}
	}
	return 1
}
