// Package svgplot draws small self-contained SVG charts for demur's HTML
// pages: no script, no network, no library, so that a page opens from a
// file on an air-gapped host.
package svgplot

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Palette colours series in order.
var Palette = []string{"#e6550d", "#3182bd", "#31a354", "#756bb1", "#636363", "#fd8d3c", "#6baed6", "#74c476", "#9e9ac8", "#969696", "#d62728", "#8c564b"}

// Point is an (x, y) pair; Mark draws a dot on it.
type Point struct {
	X, Y float64
	Mark bool
}

// Series is one line.
type Series struct {
	Name   string
	Points []Point
}

const (
	width, height          = 760, 300
	left, right, top, foot = 60, 150, 30, 40
)

// Line draws series as lines on shared axes from 0; yMax ≤ 0 scales to the
// data. Marked points get a dot (e.g. a refusal).
func Line(title, xlabel, ylabel string, ss []Series, yMax float64) string {
	xMax := 0.0
	for _, s := range ss {
		for _, p := range s.Points {
			xMax = math.Max(xMax, p.X)
			if yMax <= 0 {
				yMax = math.Max(yMax, p.Y)
			}
		}
	}
	xMax, yMax = nonZero(xMax), nonZero(yMax)
	var b strings.Builder
	frame(&b, title, xlabel, ylabel, xMax, yMax)
	for i, s := range ss {
		c := Palette[i%len(Palette)]
		pts := make([]string, len(s.Points))
		for j, p := range s.Points {
			pts[j] = fmt.Sprintf("%.1f,%.1f", sx(p.X, xMax), sy(p.Y, yMax))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, c, strings.Join(pts, " "))
		for _, p := range s.Points {
			if p.Mark {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="#000" stroke-width=".5"/>`, sx(p.X, xMax), sy(p.Y, yMax), c)
			}
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="3" fill="%s"/><text x="%d" y="%d" class="ax">%s</text>`,
			width-right+10, top+14*i+4, c, width-right+24, top+14*i+8, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>")
	return b.String()
}

// Dots draws points in rows: row names on the y axis, x from 0 to xMax.
func Dots(title, xlabel string, rows []string, pts [][]Point) string {
	xMax := 0.0
	for _, r := range pts {
		for _, p := range r {
			xMax = math.Max(xMax, p.X)
		}
	}
	xMax = nonZero(xMax)
	h := top + foot + 16*max(1, len(rows))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" role="img" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d"><title>%s</title>`,
		width, h, width, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="ttl">%s</text>`, left, html.EscapeString(title))
	for i, name := range rows {
		y := top + 16*i + 8
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="ax" text-anchor="end">%s</text><line x1="%d" y1="%d" x2="%d" y2="%d" class="grid"/>`,
			left-4, y+3, html.EscapeString(name), left, y, width-right, y)
		for _, p := range pts[i] {
			c := Palette[0]
			if !p.Mark {
				c = Palette[5]
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%d" r="3.5" fill="%s"/>`, sx(p.X, xMax), y, c)
		}
	}
	axisY := h - foot + 4
	for t := 0; t <= 4; t++ {
		v := xMax * float64(t) / 4
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="ax" text-anchor="middle">%s</text>`, sx(v, xMax), axisY+12, num(v))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="ax" text-anchor="middle">%s</text></svg>`, (left+width-right)/2, axisY+28, html.EscapeString(xlabel))
	return b.String()
}

// Bars draws one horizontal bar per label.
func Bars(title string, labels []string, values []float64) string {
	vMax := 0.0
	for _, v := range values {
		vMax = math.Max(vMax, v)
	}
	vMax = nonZero(vMax)
	h := top + 22*len(labels) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" role="img" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d"><title>%s</title>`,
		width, h, width, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="ttl">%s</text>`, left+100, html.EscapeString(title))
	for i, l := range labels {
		y := top + 22*i
		w := float64(width-left-100-right) * values[i] / vMax
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="ax" text-anchor="end">%s</text><rect x="%d" y="%d" width="%.1f" height="16" fill="%s"/><text x="%.1f" y="%d" class="ax">%s</text>`,
			left+96, y+12, html.EscapeString(l), left+100, y, w, Palette[1], float64(left+104)+w, y+12, num(values[i]))
	}
	b.WriteString("</svg>")
	return b.String()
}

func frame(b *strings.Builder, title, xlabel, ylabel string, xMax, yMax float64) {
	fmt.Fprintf(b, `<svg class="plot" role="img" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d"><title>%s</title>`,
		width, height, width, height, html.EscapeString(title))
	fmt.Fprintf(b, `<text x="%d" y="18" class="ttl">%s</text>`, left, html.EscapeString(title))
	for t := 0; t <= 4; t++ {
		x, y := xMax*float64(t)/4, yMax*float64(t)/4
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/><text x="%d" y="%.1f" class="ax" text-anchor="end">%s</text>`,
			left, sy(y, yMax), width-right, sy(y, yMax), left-4, sy(y, yMax)+3, num(y))
		fmt.Fprintf(b, `<text x="%.1f" y="%d" class="ax" text-anchor="middle">%s</text>`, sx(x, xMax), height-foot+14, num(x))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" class="ax" text-anchor="middle">%s</text>`, (left+width-right)/2, height-foot+30, html.EscapeString(xlabel))
	fmt.Fprintf(b, `<text x="12" y="%d" class="ax" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`,
		(top+height-foot)/2, (top+height-foot)/2, html.EscapeString(ylabel))
}

func sx(x, xMax float64) float64 { return left + float64(width-left-right)*clamp(x/xMax) }
func sy(y, yMax float64) float64 {
	return float64(height-foot) - float64(height-foot-top)*clamp(y/yMax)
}

func clamp(v float64) float64 { return math.Max(0, math.Min(1, v)) }

func nonZero(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	return v
}

// num formats an axis value compactly: 1.2k, 3.4M, 0.25.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
