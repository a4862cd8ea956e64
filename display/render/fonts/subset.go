//go:build ignore

// Command subset cuts the glyphs the kiosk needs out of the X11 misc-fixed
// BDF fonts (public domain) into the small files embedded beside it.
//
// The misc-fixed fonts ship as PCF in Debian's xfonts-base; to regenerate:
//
//	apt-get install xfonts-base pcf2bdf
//	for f in 5x8 6x10 6x13B 7x13B 9x15B 10x20; do
//		zcat /usr/share/fonts/X11/misc/$f.pcf.gz | pcf2bdf -o /tmp/$f.bdf
//		go run subset.go /tmp/$f.bdf > $f.bdf
//	done
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ranges are the code points kept: Latin (Basic, Latin-1, Extended-A and -B),
// general punctuation, the euro and trademark signs, the replacement character.
var ranges = [][2]rune{
	{0x20, 0x7e}, {0xa0, 0x24f}, {0x2010, 0x203a}, {0x20ac, 0x20ac}, {0x2122, 0x2122}, {0xfffd, 0xfffd},
}

var keepProps = map[string]bool{
	"COPYRIGHT": true, "FONT_ASCENT": true, "FONT_DESCENT": true, "CAP_HEIGHT": true, "X_HEIGHT": true,
}

func keep(r rune) bool {
	for _, g := range ranges {
		if r >= g[0] && r <= g[1] {
			return true
		}
	}
	return false
}

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	var head, props []string
	var chars [][]string
	var cur []string
	inChar, inProps := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		key, _, _ := strings.Cut(line, " ")
		switch {
		case key == "STARTPROPERTIES":
			inProps = true
		case key == "ENDPROPERTIES":
			inProps = false
		case inProps:
			if keepProps[key] {
				props = append(props, line)
			}
		case key == "STARTCHAR":
			inChar, cur = true, []string{line}
		case inChar:
			cur = append(cur, line)
			if key == "ENDCHAR" {
				inChar = false
				chars = append(chars, cur)
			}
		case key == "STARTFONT" || key == "FONT" || key == "FONTBOUNDINGBOX" || key == "SIZE":
			head = append(head, line)
		}
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for _, l := range head {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintf(w, "STARTPROPERTIES %d\n", len(props))
	for _, l := range props {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w, "ENDPROPERTIES")
	var kept [][]string
	for _, c := range chars {
		for _, l := range c {
			if enc, ok := strings.CutPrefix(l, "ENCODING "); ok {
				if n, err := strconv.Atoi(enc); err == nil && keep(rune(n)) {
					kept = append(kept, c)
				}
			}
		}
	}
	fmt.Fprintf(w, "CHARS %d\n", len(kept))
	for _, c := range kept {
		for _, l := range c {
			if strings.HasPrefix(l, "SWIDTH ") {
				continue
			}
			fmt.Fprintln(w, l)
		}
	}
	fmt.Fprintln(w, "ENDFONT")
}
