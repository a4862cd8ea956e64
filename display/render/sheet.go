package render

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"

	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/uitpas/tap-kiosk/display"
)

// Sample is a named example of a screen, for previews and golden tests.
type Sample struct {
	Name   string // e.g. "nl-saved-total"
	Screen display.Screen
}

// Samples returns every screen kind in every language, with realistic data
// and the awkward cases: a long event title, central's endUserMessage (one
// in two pages), a first point and a large total.
func Samples() []Sample {
	const (
		title     = "Yoga in ’t park"
		longTitle = "Zomerconcert van het Kinderkoor Sint-Dimpna – Geel, met après-concert in café ‘De Zwaan’"
		code      = "https://uitpas.be/spaar/3f9a1c7e-52b4-4d0a"
	)
	// Central's messages as the reference ingest words them (ingest's
	// messages.go); long is one that takes two pages.
	msgs := map[string]struct{ already, notAllowed, long string }{
		"nl": {"Punt al gespaard: max.\u00a01\u00a0per week", "Deze activiteit is afgelopen.",
			"Je punt is niet gespaard. De klok van deze zuil loopt fout. Meld je aan de balie."},
		"fr": {"Point déjà épargné\u00a0: max.\u00a01\u00a0par semaine", "Cette activité est terminée.",
			"Votre point n’est pas épargné. L’horloge de cette borne n’est pas à l’heure. Adressez-vous à l’accueil."},
		"en": {"Point already collected: max.\u00a01\u00a0per week", "This activity has ended.",
			"Your point was not collected. This kiosk’s clock is wrong. Please go to the desk."},
	}
	var out []Sample
	for _, lang := range display.Languages {
		add := func(name string, s display.Screen) {
			s.Lang = lang
			out = append(out, Sample{Name: lang + "-" + name, Screen: s})
		}
		add("idle", display.Screen{Kind: display.Idle, EventTitle: title, Code: code})
		add("idle-long-title", display.Screen{Kind: display.Idle, EventTitle: longTitle})
		add("idle-no-title", display.Screen{Kind: display.Idle})
		add("spaarcode", display.Screen{Kind: display.Spaarcode, EventTitle: title, Code: code})
		add("saved", display.Screen{Kind: display.Saved, Points: 1})
		add("saved-total", display.Screen{Kind: display.Saved, Points: 1, HasTotal: true, Total: 23})
		add("saved-many", display.Screen{Kind: display.Saved, Points: 12, HasTotal: true, Total: 1250})
		add("already-saved", display.Screen{Kind: display.AlreadySaved, EventTitle: title})
		add("already-saved-message", display.Screen{Kind: display.AlreadySaved, EventTitle: title, Message: msgs[lang].already})
		add("blocked", display.Screen{Kind: display.Blocked})
		add("not-recognised", display.Screen{Kind: display.NotRecognised})
		add("unreadable", display.Screen{Kind: display.Unreadable})
		add("no-event", display.Screen{Kind: display.NoEvent})
		add("not-allowed", display.Screen{Kind: display.NotAllowed, Message: msgs[lang].notAllowed})
		add("not-allowed-long", display.Screen{Kind: display.NotAllowed, Message: msgs[lang].long})
		add("not-allowed-long-2", display.Screen{Kind: display.NotAllowed, Message: msgs[lang].long, Page: 1})
		add("queue-full", display.Screen{Kind: display.QueueFull})
		add("storage-error", display.Screen{Kind: display.StorageError})
		add("fault", display.Screen{Kind: display.Fault})
		add("provisioning", display.Screen{Kind: display.Provisioning, DeviceID: "kiosk-bib-geel-01", Code: "4821-7713"})
	}
	return out
}

// Palette of the PNGs: an unlit and a lit OLED pixel.
var (
	Unlit = color.Gray{Y: 0x00}
	Lit   = color.Gray{Y: 0xff}
)

// ToImage returns img scaled up by scale (each pixel a scale×scale square),
// as a two-colour paletted image: small PNGs, exact pixels.
func ToImage(img *image1bit.VerticalLSB, scale int) *image.Paletted {
	scale = max(1, scale)
	b := img.Bounds()
	out := image.NewPaletted(image.Rect(0, 0, b.Dx()*scale, b.Dy()*scale), color.Palette{Unlit, Lit})
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if !img.BitAt(x, y) {
				continue
			}
			for dy := 0; dy < scale; dy++ {
				o := out.PixOffset((x-b.Min.X)*scale, (y-b.Min.Y)*scale+dy)
				for dx := 0; dx < scale; dx++ {
					out.Pix[o+dx] = 1
				}
			}
		}
	}
	return out
}

// EncodePNG returns the PNG of img scaled by scale.
func EncodePNG(img *image1bit.VerticalLSB, scale int) ([]byte, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, ToImage(img, scale)); err != nil {
		return nil, fmt.Errorf("render: png: %w", err)
	}
	return buf.Bytes(), nil
}

// ContactSheet lays images out in a grid of cols columns, each scaled by
// scale and labelled underneath, on a grey ground.
func ContactSheet(names []string, imgs []*image1bit.VerticalLSB, cols, scale int) (*image.Gray, error) {
	if len(imgs) == 0 || len(names) != len(imgs) {
		return nil, fmt.Errorf("render: contact sheet: %d names for %d images", len(names), len(imgs))
	}
	fs, err := loadFonts()
	if err != nil {
		return nil, err
	}
	label := newFace(fs.f6x10, false, 1)
	cols = max(1, min(cols, len(imgs)))
	rows := (len(imgs) + cols - 1) / cols
	b := imgs[0].Bounds()
	pad := 12
	cw, ch := b.Dx()*scale+pad, b.Dy()*scale+label.Height()+pad
	sheet := image.NewGray(image.Rect(0, 0, cols*cw+pad, rows*ch+pad))
	for i := range sheet.Pix {
		sheet.Pix[i] = 0x60
	}
	for i, img := range imgs {
		x0, y0 := pad+(i%cols)*cw, pad+(i/cols)*ch
		big := ToImage(img, scale)
		for y := 0; y < big.Rect.Dy(); y++ {
			for x := 0; x < big.Rect.Dx(); x++ {
				c := Unlit
				if big.Pix[big.PixOffset(x, y)] == 1 {
					c = Lit
				}
				sheet.SetGray(x0+x, y0+y, c)
			}
		}
		lb := image1bit.NewVerticalLSB(image.Rect(0, 0, cw-pad, label.Height()))
		label.Draw(lb, 0, 0, names[i])
		for y := 0; y < lb.Rect.Dy(); y++ {
			for x := 0; x < lb.Rect.Dx(); x++ {
				if lb.BitAt(x, y) {
					sheet.SetGray(x0+x, y0+big.Rect.Dy()+2+y, color.Gray{Y: 0xff})
				}
			}
		}
	}
	return sheet, nil
}

// WriteAll renders every sample with o (DefaultOpts when nil) into dir as
// NAME.png scaled by scale, plus contact-sheet.png with all of them, one
// language per column.
func WriteAll(dir string, o *Opts, scale int) error {
	r, err := New(o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	samples := Samples()
	perLang := len(samples) / len(display.Languages)
	var names []string
	var imgs []*image1bit.VerticalLSB
	// Sheet order: row by screen, column by language.
	for i := 0; i < perLang; i++ {
		for l := range display.Languages {
			s := samples[l*perLang+i]
			img := r.Render(s.Screen)
			data, err := EncodePNG(img, scale)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, s.Name+".png"), data, 0o644); err != nil {
				return fmt.Errorf("render: %w", err)
			}
			names, imgs = append(names, s.Name), append(imgs, img)
		}
	}
	sheet, err := ContactSheet(names, imgs, len(display.Languages), max(1, scale/2+1))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, sheet); err != nil {
		return fmt.Errorf("render: contact sheet: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "contact-sheet.png"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	return nil
}
