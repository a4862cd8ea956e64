package kioskctl

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/uitpas/tap-kiosk/display/render"
)

// screens renders every screen the kiosk can show, in every language.
func screens(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kioskctl screens", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the PNG files to this `directory` (required)")
	var w, h int
	size := fs.String("size", "128x64", "panel size in pixels, `WxH`")
	scale := fs.Int("scale", 4, "each panel pixel becomes scale×scale PNG pixels")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "kioskctl: screens needs -out DIR and nothing else")
		return 2
	}
	if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil || w <= 0 || h <= 0 {
		fmt.Fprintf(stderr, "kioskctl: -size %q: want WxH, e.g. 128x64\n", *size)
		return 2
	}
	if *scale < 1 || *scale > 16 {
		fmt.Fprintf(stderr, "kioskctl: -scale %d: want 1 to 16\n", *scale)
		return 2
	}
	if err := render.WriteAll(*out, &render.Opts{Width: w, Height: h}, *scale); err != nil {
		fmt.Fprintf(stderr, "kioskctl: screens: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "screens written to %s (contact-sheet.png shows them all)\n", *out)
	return 0
}
