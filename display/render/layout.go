package render

import (
	"image"
	"strings"
	"unicode/utf8"

	"periph.io/x/devices/v3/ssd1306/image1bit"
)

// block is a paragraph of a screen: text with the faces it may take, largest
// first. The layout picks the largest faces that let every block fit.
type block struct {
	text     string
	faces    []*Face
	maxLines int  // 0: as many as fit
	mayCut   bool // an ellipsis is acceptable (event titles); otherwise a cut forces smaller faces first
	tight    bool // height from the ink, not the font's line: figures carry no descenders
	gap      int  // pixels above the block, when it is not the first
	// pre, when set, are the block's lines already broken (a page of a
	// message): laid as they are.
	pre []string
	// minLines is room kept for lines to come: the saved screen keeps a
	// line for the total, so that nothing moves when it arrives.
	minLines int
}

// laid is a block wrapped into lines with one face.
type laid struct {
	face    *Face
	lines   []string
	reserve int // empty lines kept below (block.minLines)
	lineH   int
	inkTop  int // rows of the line box above the ink (tight blocks)
	gap     int
}

func (l *laid) height() int { return (len(l.lines) + l.reserve) * l.lineH }

// fit lays blocks out in a w×h box. It prefers the largest face for earlier
// blocks (the headline is the glance), then for later ones; when nothing
// fits whole it cuts with ellipses and, as a last resort, drops trailing
// blocks. Every line it returns is at most w wide and the whole at most h
// tall: nothing it returns is clipped.
func fit(blocks []block, w, h int) []laid {
	if len(blocks) == 0 || w <= 0 || h <= 0 {
		return nil
	}
	idx := make([]int, len(blocks))
	for {
		if out, ok := tryFit(blocks, idx, w, h, false); ok {
			return out
		}
		// Next combination, the last block varying fastest.
		i := len(idx) - 1
		for ; i >= 0; i-- {
			if idx[i]+1 < len(blocks[i].faces) {
				idx[i]++
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			break
		}
	}
	// Nothing fits whole: smallest faces, cutting blocks from the longest.
	for i := range idx {
		idx[i] = len(blocks[i].faces) - 1
	}
	bs := append([]block(nil), blocks...)
	for len(bs) > 0 {
		out, ok := tryFit(bs, idx, w, h, true)
		if ok {
			return out
		}
		// Take one line off the block with the most lines; when every block
		// is down to one, drop the last block.
		most, n, total := -1, 1, 0
		for i, l := range out {
			total += l.gap + l.height()
			if len(l.lines) > n {
				most, n = i, len(l.lines)
			}
		}
		if most >= 0 {
			// As many lines as the room left by the others holds, and at
			// least one fewer than now.
			l := out[most]
			fits := (h - (total - l.height())) / l.lineH
			bs[most].maxLines = max(1, min(n-1, fits))
			continue
		}
		bs = bs[:len(bs)-1]
		idx = idx[:len(bs)]
	}
	return nil
}

// tryFit lays the blocks out with faces idx. It reports whether the result
// fits in w×h with no cut that a block does not allow (any cut when force).
func tryFit(blocks []block, idx []int, w, h int, force bool) ([]laid, bool) {
	out := make([]laid, len(blocks))
	total := 0
	ok := true
	for i, b := range blocks {
		face := b.faces[idx[i]]
		lines, cut, wide := b.pre, false, false
		if b.pre == nil {
			lines, cut, wide = wrap(face, b.text, w, b.maxLines)
		}
		for _, line := range b.pre {
			wide = wide || face.Measure(line) > w
		}
		if wide || (cut && !b.mayCut && !force) {
			ok = false
		}
		l := laid{face: face, lines: lines, lineH: face.Height(), reserve: max(0, b.minLines-len(lines))}
		if b.tight {
			top, bottom := 0, 0
			for j, line := range lines {
				t, bo := face.inkRows(line)
				if j == 0 || t < top {
					top = t
				}
				bottom = max(bottom, bo)
			}
			if bottom > top {
				l.inkTop, l.lineH = top, bottom-top
			}
		}
		if i > 0 {
			l.gap = b.gap
		}
		out[i] = l
		total += l.gap + l.height()
	}
	return out, ok && total <= h
}

// draw draws laid blocks centred in r. A line that would not fit whole is
// not drawn; draw returns how many were left out (fit makes that none).
func draw(dst *image1bit.VerticalLSB, r image.Rectangle, ls []laid) (skipped int) {
	total := 0
	for _, l := range ls {
		total += l.gap + l.height()
	}
	y := r.Min.Y + (r.Dy()-total)/2
	for _, l := range ls {
		y += l.gap
		for _, line := range l.lines {
			lw := l.face.Measure(line)
			if lw <= r.Dx() && y >= r.Min.Y && y+l.lineH <= r.Max.Y {
				l.face.Draw(dst, r.Min.X+(r.Dx()-lw)/2, y-l.inkTop, line)
			} else {
				skipped++
			}
			y += l.lineH
		}
		y += l.reserve * l.lineH
	}
	return skipped
}

const ellipsis = "…"

// fields splits s at ASCII white space only: strings.Fields would break at
// a no-break space too ("23 punten", "Total : 23").
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
	})
}

// wrap breaks s into lines no wider than w, at spaces where it can (a
// no-break space holds), inside a word only when the word alone is too wide
// (after a hyphen or slash if one fits). With maxLines > 0 the last line
// kept ends in an ellipsis when text remains (cut). wide reports a line that
// cannot be made to fit at all (a single glyph wider than w).
func wrap(f *Face, s string, w, maxLines int) (lines []string, cut, wide bool) {
	s = strings.Join(fields(s), " ")
	words := strings.Split(s, " ")
	var cur string
	for wi := 0; wi < len(words); wi++ {
		word := words[wi]
		if word == "" {
			continue
		}
		try := word
		if cur != "" {
			try = cur + " " + word
		}
		if f.Measure(try) <= w {
			cur = try
			continue
		}
		if cur != "" {
			lines = append(lines, cur)
			cur = ""
			wi-- // retry the word on a fresh line
			continue
		}
		// The word alone is too wide: break it.
		head, tail := breakWord(f, word, w)
		if f.Measure(head) > w {
			wide = true
		}
		lines = append(lines, head)
		if tail != "" {
			words[wi] = tail
			wi--
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	if maxLines > 0 && len(lines) > maxLines {
		rest := strings.Join(lines[maxLines-1:], " ")
		lines = append(lines[:maxLines-1], ellipsize(f, rest, w))
		cut = true
	}
	return lines, cut, wide
}

// breakWord splits word so that head fits in w, preferring a break after a
// hyphen or slash; head has at least one rune.
func breakWord(f *Face, word string, w int) (head, tail string) {
	best, soft, x := 0, 0, 0
	for i, r := range word {
		x += f.runeWidth(r)
		if x-f.trail() > w {
			break
		}
		_, size := utf8.DecodeRuneInString(word[i:]) // an invalid byte is one byte, not RuneLen's three
		end := i + size
		best = end
		if r == '-' || r == '/' || r == '‐' || r == '–' {
			soft = end
		}
	}
	if soft > 0 {
		best = soft
	}
	if best == 0 {
		_, n := utf8.DecodeRuneInString(word)
		best = n
	}
	return word[:best], word[best:]
}

// ellipsize cuts s to fit in w with an ellipsis, at a word boundary when
// that keeps most of the line.
func ellipsize(f *Face, s string, w int) string {
	if f.Measure(s) <= w {
		return s
	}
	room := w - f.Measure(ellipsis) - f.spacing()*f.scale
	end, x := 0, 0
	for i, r := range s {
		x += f.runeWidth(r)
		if x > room+f.trail() {
			break
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		end = i + size
	}
	head := s[:end]
	if i := strings.LastIndexByte(head, ' '); i > 0 && f.Measure(head[:i]) >= w*2/3 {
		head = head[:i]
	}
	head = strings.TrimRight(head, " ,.;:-–")
	return head + ellipsis
}
