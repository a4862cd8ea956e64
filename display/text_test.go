package display

import (
	"strings"
	"testing"
)

func TestWordsLanguages(t *testing.T) {
	for _, tc := range []struct {
		lang, want string
	}{
		{"", "Houd je UiTPAS tegen de lezer"}, {"nl", "Houd je UiTPAS tegen de lezer"}, {"xx", "Houd je UiTPAS tegen de lezer"},
		{"fr", "Présentez votre UiTPAS"}, {"FR-be", "Présentez votre UiTPAS"}, {"en", "Tap your UiTPAS"},
	} {
		if got := Words(Screen{Kind: Idle, Lang: tc.lang}).Title; got != tc.want {
			t.Errorf("lang %q: %q, want %q", tc.lang, got, tc.want)
		}
	}
}

func TestWordsSaved(t *testing.T) {
	w := Words(Screen{Kind: Saved, Points: 1, HasTotal: true, Total: 23})
	if w.Title != "+1 punt gespaard" || w.Figure != "+1" || w.Caption != "punt gespaard" {
		t.Errorf("%+v", w)
	}
	// The number is held to its word by a no-break space; one point is
	// singular.
	if len(w.Lines) != 1 || w.Lines[0] != "Totaal: 23\u00a0punten" {
		t.Errorf("lines %q", w.Lines)
	}
	if w := Words(Screen{Kind: Saved, Points: 1, HasTotal: true, Total: 1}); w.Lines[0] != "Totaal: 1\u00a0punt" {
		t.Errorf("lines %q", w.Lines)
	}
	if w := Words(Screen{Kind: Saved, Points: 3, HasTotal: true, Total: 5, Lang: "fr"}); w.Title != "+3 points épargnés" ||
		w.Lines[0] != "Total\u00a0: 5\u00a0points" {
		t.Errorf("%+v", w)
	}
	if w := Words(Screen{Kind: Saved, Points: 3, Lang: "en"}); w.Title != "+3 points collected" || len(w.Lines) != 0 {
		t.Errorf("%+v", w)
	}
}

// TestWordsUnreadable: a phone or a bank card is no UiTPAS; trying again
// would not help.
func TestWordsUnreadable(t *testing.T) {
	for lang, want := range map[string][2]string{
		"nl": {"Deze kaart werkt hier niet", "Gebruik je UiTPAS"},
		"fr": {"Carte non acceptée ici", "Utilisez votre UiTPAS"},
		"en": {"Card not accepted here", "Please use your UiTPAS"},
	} {
		w := Words(Screen{Kind: Unreadable, Lang: lang})
		if w.Title != want[0] || len(w.Lines) != 1 || w.Lines[0] != want[1] {
			t.Errorf("%s: %q %q", lang, w.Title, w.Lines)
		}
	}
}

// TestFrenchTypography: French texts use the typographic apostrophe and a
// no-break space before a colon, never a plain one; no text says "tu".
func TestFrenchTypography(t *testing.T) {
	p := dict["fr"]
	for _, s := range []string{p.tap, p.saved1, p.savedN, p.total1, p.totalN, p.already, p.blocked, p.notRec,
		p.unreadable, p.useUiTPAS, p.noEvent, p.notAllowed, p.queueFull, p.storage, p.fault, p.desk,
		p.provisioning, p.pairing, p.device, p.spaar, p.spaarHint} {
		if strings.Contains(s, "'") || strings.Contains(s, " :") || strings.Contains(" "+s+" ", " tu ") {
			t.Errorf("%q", s)
		}
	}
}

func TestWordsMessage(t *testing.T) {
	w := Words(Screen{Kind: AlreadySaved, EventTitle: "Yoga", Message: "Punt al gespaard: max.\u00a01 per week"})
	if len(w.Lines) != 1 || w.Lines[0] != "Max.\u00a01 per week" {
		t.Errorf("repeated headline not cut: %q", w.Lines)
	}
	w = Words(Screen{Kind: AlreadySaved, Lang: "fr", Message: "Point déjà épargné\u00a0: max. 1 par semaine"})
	if len(w.Lines) != 1 || w.Lines[0] != "Max. 1 par semaine" {
		t.Errorf("French headline not cut: %q", w.Lines)
	}
	msg := "Deze activiteit is afgelopen."
	w = Words(Screen{Kind: NotAllowed, Message: msg})
	if len(w.Lines) != 1 || w.Lines[0] != msg {
		t.Errorf("message lines %q", w.Lines)
	}
}

func TestWordsEveryKind(t *testing.T) {
	kinds := []Kind{Idle, Saved, AlreadySaved, Blocked, NotRecognised, Unreadable, NoEvent, NotAllowed,
		QueueFull, StorageError, Fault, Provisioning, Spaarcode}
	for _, lang := range Languages {
		seen := map[string]Kind{}
		for _, k := range kinds {
			p := Plain(Screen{Kind: k, Lang: lang, Points: 1, DeviceID: "d", Code: "c"})
			if p == "" || strings.Contains(p, "%!") {
				t.Errorf("%s %s: %q", lang, k, p)
			}
			if other, dup := seen[p]; dup {
				t.Errorf("%s: %s and %s both say %q", lang, k, other, p)
			}
			seen[p] = k
		}
	}
}
