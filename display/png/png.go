// Package png writes the kiosk's screens as PNG files: latest.png always
// holds what the panel would show (replaced atomically, so a viewer never
// reads half a file), and with Keep > 0 the last Keep screens are kept as
// numbered files too, for demos and support.
package png

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/internal/mailbox"
	"github.com/uitpas/tap-kiosk/display/render"
)

// Opts configures the PNG output.
type Opts struct {
	Width, Height int // of the emulated panel; 128×64
	Scale         int // each panel pixel becomes Scale×Scale; 4
	// Keep is how many numbered screens (screen-000001-saved.png …) to keep
	// besides latest.png; 0 keeps none.
	Keep   int
	Logger *slog.Logger
}

// DefaultOpts is a 128×64 panel scaled 4×, latest.png only.
var DefaultOpts = Opts{Width: 128, Height: 64, Scale: 4}

// Display writes screens to a directory.
type Display struct {
	dir  string
	o    Opts
	r    *render.Renderer
	work *mailbox.Worker[display.Screen]
	img  *image1bit.VerticalLSB // owned by the worker
	n    int                    // screens written; owned by the worker

	mu  sync.Mutex
	err error
}

// New returns a display writing into dir, which it creates; o may be nil.
func New(dir string, o *Opts) (*Display, error) {
	opts := DefaultOpts
	if o != nil {
		opts = *o
	}
	if opts.Width == 0 || opts.Height == 0 {
		opts.Width, opts.Height = DefaultOpts.Width, DefaultOpts.Height
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := render.New(&render.Opts{Width: opts.Width, Height: opts.Height})
	if err != nil {
		return nil, fmt.Errorf("png: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("png: %w", err)
	}
	d := &Display{dir: dir, o: opts, r: r, img: image1bit.NewVerticalLSB(r.Bounds())}
	d.work = mailbox.NewWorker(d.show)
	return d, nil
}

// Show hands s to the writing goroutine and returns at once.
func (d *Display) Show(s display.Screen) { d.work.Put(s) }

// Err is the last write error, nil when the last write went through.
func (d *Display) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Halt writes a screen still waiting, then stops; the files stay.
func (d *Display) Halt() error {
	d.work.Stop()
	return d.Err()
}

func (d *Display) String() string { return "png(" + d.dir + ")" }

func (d *Display) show(s display.Screen) {
	err := d.write(d.img, s)
	if err != nil {
		d.o.Logger.Warn("png: write failed", "dir", d.dir, "err", err)
	}
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
}

func (d *Display) write(img *image1bit.VerticalLSB, s display.Screen) error {
	d.r.Draw(img, s)
	data, err := render.EncodePNG(img, d.o.Scale)
	if err != nil {
		return fmt.Errorf("png: %w", err)
	}
	if err := writeAtomic(filepath.Join(d.dir, "latest.png"), data); err != nil {
		return err
	}
	if d.o.Keep <= 0 {
		return nil
	}
	d.n++
	if err := writeAtomic(filepath.Join(d.dir, numbered(d.n, s.Kind)), data); err != nil {
		return err
	}
	if old := d.n - d.o.Keep; old > 0 {
		matches, _ := filepath.Glob(filepath.Join(d.dir, fmt.Sprintf("screen-%06d-*.png", old)))
		for _, m := range matches {
			os.Remove(m)
		}
	}
	return nil
}

func numbered(n int, k display.Kind) string { return fmt.Sprintf("screen-%06d-%s.png", n, k) }

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("png: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("png: %w", err)
	}
	return nil
}

var _ display.Display = (*Display)(nil)
