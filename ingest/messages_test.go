package ingest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/uitpas/tap-kiosk/display"
	"github.com/uitpas/tap-kiosk/display/render"
	"github.com/uitpas/tap-kiosk/protocol"
)

// allMessages is every endUserMessage the reference ingest sends, by the
// kiosk screen it is shown on.
func allMessages() map[string]struct {
	kind display.Kind
	msg  map[string]string
} {
	type m = struct {
		kind display.Kind
		msg  map[string]string
	}
	out := map[string]m{
		"blocked": {display.Blocked, msgBlocked}, "no-passholder": {display.NotRecognised, msgNoPassholder},
		"not-started": {display.NotAllowed, msgNotStarted}, "ended": {display.NotAllowed, msgEnded},
		"no-event": {display.NoEvent, msgNoEvent}, "invalid": {display.NotAllowed, msgInvalid},
		"not-here": {display.NotAllowed, msgNotHere}, "bad-date": {display.NotAllowed, msgBadDate},
	}
	for _, pt := range [][2]int{{1, 1}, {1, 23}, {3, 1250}, {0, 5}} {
		out[fmt.Sprintf("saved-%d-%d", pt[0], pt[1])] = m{display.Saved, savedMessage(pt[0], pt[1])}
	}
	for _, p := range []string{protocol.PeriodAbsolute, protocol.PeriodDay, protocol.PeriodWeek, protocol.PeriodMonth,
		protocol.PeriodQuarter, protocol.PeriodYear} {
		out["maximum-"+p] = m{display.AlreadySaved, maximumMessage(p, 1)}
	}
	return out
}

// TestMessagesStyle: every message in nl, fr and en; a number never apart
// from its word; French says vous, with ’ and a no-break space before a
// colon; the saved message is the total, not "+1 punt gespaard" again.
func TestMessagesStyle(t *testing.T) {
	numberSpace := regexp.MustCompile(`\d `)
	for name, m := range allMessages() {
		for _, lang := range []string{"nl", "fr", "en"} {
			s := m.msg[lang]
			if s == "" {
				t.Errorf("%s: no %s message", name, lang)
			}
			if numberSpace.MatchString(s) {
				t.Errorf("%s %s: %q breaks after a number (use a no-break space)", name, lang, s)
			}
			if strings.Contains(s, "'") {
				t.Errorf("%s %s: %q has a straight apostrophe", name, lang, s)
			}
		}
		fr := " " + m.msg["fr"] + " "
		if strings.Contains(fr, " tu ") || strings.Contains(fr, " te ") || strings.Contains(fr, " :") {
			t.Errorf("%s fr: %q", name, m.msg["fr"])
		}
		if strings.Contains(m.msg["nl"], "spaarde") || strings.Contains(m.msg["nl"], ", je") {
			t.Errorf("%s nl: %q says it twice, or splices two sentences with a comma", name, m.msg["nl"])
		}
	}
	for _, tc := range []struct {
		total      int
		nl, fr, en string
	}{
		{1, "Totaal: 1\u00a0punt", "Total\u00a0: 1\u00a0point", "Total: 1\u00a0point"},
		{23, "Totaal: 23\u00a0punten", "Total\u00a0: 23\u00a0points", "Total: 23\u00a0points"},
		{10000, "Totaal: 10000\u00a0punten", "Total\u00a0: 10000\u00a0points", "Total: 10000\u00a0points"},
	} {
		m := savedMessage(1, tc.total)
		if len(m) != 3 || m["nl"] != tc.nl || m["fr"] != tc.fr || m["en"] != tc.en {
			t.Errorf("saved %d: %q", tc.total, m)
		}
	}
	if got := maximumMessage(protocol.PeriodWeek, 1)["nl"]; got != "Punt al gespaard: max.\u00a01\u00a0per week" {
		t.Errorf("maximum nl %q", got)
	}
}

// TestMessagesFitTheKiosk renders each message on the kiosk screen it is
// shown on, at 128×64 and in the legible faces: one page each, except the
// two refusals that also send the passholder to the desk, which may take
// two.
func TestMessagesFitTheKiosk(t *testing.T) {
	r, err := render.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range allMessages() {
		most := 1
		if name == "not-here" || name == "bad-date" { // rare: the passholder goes to the desk
			most = 2
		}
		for lang, msg := range m.msg {
			s := display.Screen{Kind: m.kind, Lang: lang, Message: msg, Points: 1, HasTotal: m.kind == display.Saved, Total: 23}
			if n := r.Pages(s); n > most {
				t.Errorf("%s %s: %q takes %d pages on the kiosk, want at most %d", name, lang, msg, n, most)
			}
		}
	}
}
