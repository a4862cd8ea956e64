package png

import (
	"bytes"
	stdpng "image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/render"
)

func TestWritesLatestAndKeeps(t *testing.T) {
	dir := t.TempDir()
	d, err := New(dir, &Opts{Scale: 2, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	screens := []display.Screen{{Kind: display.Idle, EventTitle: "Yoga"}, {Kind: display.Saved, Points: 1}, {Kind: display.Fault}}
	for _, s := range screens {
		d.Show(s)
		if err := d.Halt(); err != nil { // Halt flushes; restart for the next
			t.Fatal(err)
		}
		n := d.n
		d, err = New(dir, &Opts{Scale: 2, Keep: 2})
		if err != nil {
			t.Fatal(err)
		}
		d.n = n
	}
	d.Halt()
	data, err := os.ReadFile(filepath.Join(dir, "latest.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := stdpng.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 128 {
		t.Errorf("latest.png is %v", b)
	}
	r, _ := render.New(nil)
	want, _ := render.EncodePNG(r.Render(display.Screen{Kind: display.Fault}), 2)
	if !bytes.Equal(data, want) {
		t.Error("latest.png is not the fault screen")
	}
	names, _ := filepath.Glob(filepath.Join(dir, "screen-*.png"))
	if len(names) != 2 || filepath.Base(names[0]) != "screen-000002-saved.png" || filepath.Base(names[1]) != "screen-000003-fault.png" {
		t.Errorf("kept %v", names)
	}
}

func TestWriteError(t *testing.T) {
	dir := t.TempDir()
	d, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	d.Show(display.Screen{Kind: display.Idle})
	if err := d.Halt(); err == nil {
		t.Error("no error writing into a removed directory")
	}
}
