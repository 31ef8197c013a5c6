package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
	"unicode"
)

// chart is a grouped bar chart: one group per case, one bar per series (broker) in each,
// the bar at the median with a whisker from the lowest to the highest run.
type chart struct {
	Title  string
	XLabel string   // under the group labels
	Series []string // legend, one colour each, in bar order
	Groups []barGroup
	Lines  []refLine
}

type barGroup struct {
	Label string
	Bars  []summary // one per series; N == 0 draws no bar
}

// refLine is a dashed horizontal line over groups [From, To), a target.
type refLine struct {
	Value    float64
	Label    string
	From, To int
}

var (
	colInk     = color.RGBA{0x22, 0x22, 0x22, 0xff}
	colGrid    = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	colTarget  = color.RGBA{0xc0, 0x1c, 0x28, 0xff}
	colSeries  = []color.RGBA{{0x1f, 0x5f, 0xa8, 0xff}, {0xf0, 0x8a, 0x24, 0xff}, {0x3a, 0x9a, 0x4a, 0xff}, {0x80, 0x50, 0xa0, 0xff}}
	colWhisker = color.RGBA{0x00, 0x00, 0x00, 0xff}
)

// Layout, in pixels; text is drawn at twice the glyph size.
const (
	textScale = 2
	marginL   = 100
	marginR   = 20
	marginT   = 70
	marginB   = 60
)

// render draws c on a w x h white canvas.
func (c *chart) render(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), color.White)
	x0, x1, y0, y1 := marginL, w-marginR, h-marginB, marginT // plot area; y0 is the bottom
	top := 0.0
	for _, g := range c.Groups {
		for _, b := range g.Bars {
			top = max(top, b.Max)
		}
	}
	for _, l := range c.Lines {
		top = max(top, l.Value)
	}
	step := niceStep(top / 5)
	top = math.Ceil(top*1.08/step) * step
	if top <= 0 {
		top, step = 1, 0.2
	}
	ypix := func(v float64) int { return y0 - int(math.Round(v/top*float64(y0-y1))) }

	// Grid and y labels.
	for v := 0.0; v <= top+step/2; v += step {
		y := ypix(v)
		hline(img, x0, x1, y, colGrid)
		label := thousands(v)
		drawText(img, x0-8-textWidth(label), y-glyphH*textScale/2, label, colInk)
	}
	vline(img, x0, y1, y0, colInk)
	hline(img, x0, x1, y0, colInk)

	// Bars.
	n := max(len(c.Groups), 1)
	groupW := float64(x1-x0) / float64(n)
	series := max(len(c.Series), 1)
	barW := int(groupW * 0.7 / float64(series))
	for gi, g := range c.Groups {
		gx := x0 + int(float64(gi)*groupW)
		left := gx + int(groupW*0.15)
		for si, b := range g.Bars {
			if b.N == 0 {
				continue
			}
			bx := left + si*barW
			fill(img, image.Rect(bx+1, ypix(b.Median), bx+barW-1, y0), colSeries[si%len(colSeries)])
			if b.N > 1 {
				mid := bx + barW/2
				vline(img, mid, ypix(b.Max), ypix(b.Min), colWhisker)
				hline(img, mid-3, mid+3, ypix(b.Max), colWhisker)
				hline(img, mid-3, mid+3, ypix(b.Min), colWhisker)
			}
		}
		drawText(img, gx+int(groupW/2)-textWidth(g.Label)/2, y0+12, g.Label, colInk)
	}

	// Targets.
	for _, l := range c.Lines {
		from := x0 + int(float64(l.From)*groupW)
		to := x0 + int(float64(l.To)*groupW)
		y := ypix(l.Value)
		for x := from; x < to; x += 10 {
			hline(img, x, min(x+5, to), y, colTarget)
			hline(img, x, min(x+5, to), y+1, colTarget)
		}
		drawText(img, max(from, to-textWidth(l.Label)), y-glyphH*textScale-4, l.Label, colTarget)
	}

	if c.XLabel != "" {
		drawText(img, x0+(x1-x0)/2-textWidth(c.XLabel)/2, y0+36, c.XLabel, colInk)
	}

	// Title and legend.
	drawText(img, x0, 12, c.Title, colInk)
	lx := x0
	for si, name := range c.Series {
		fill(img, image.Rect(lx, 40, lx+14, 54), colSeries[si%len(colSeries)])
		drawText(img, lx+20, 40, name, colInk)
		lx += 20 + textWidth(name) + 30
	}
	return img
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	r = r.Canon().Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.Set(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	fill(img, image.Rect(x0, y, x1+1, y+1), c)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	fill(img, image.Rect(x, y0, x+1, y1+1), c)
}

func textWidth(s string) int { return len([]rune(s)) * glyphAdvance * textScale }

// drawText draws s upper-cased with its top-left corner at (x, y).
func drawText(img *image.RGBA, x, y int, s string, c color.Color) {
	for _, r := range strings.ToUpper(s) {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['?']
			if unicode.IsSpace(r) {
				g = glyphs[' ']
			}
		}
		for row, line := range g {
			for col, px := range line {
				if px == '#' {
					fill(img, image.Rect(x+col*textScale, y+row*textScale, x+(col+1)*textScale, y+(row+1)*textScale), c)
				}
			}
		}
		x += glyphAdvance * textScale
	}
}

// writePNG encodes img to path.
func writePNG(path string, img image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
