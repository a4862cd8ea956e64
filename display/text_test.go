package display

import (
	"strings"
	"testing"
)

func TestWordsLanguages(t *testing.T) {
	for _, tc := range []struct {
		lang, want string
	}{
		{"", "Tik je UiTPAS"}, {"nl", "Tik je UiTPAS"}, {"xx", "Tik je UiTPAS"},
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
	if len(w.Lines) != 1 || w.Lines[0] != "Totaal: 23" {
		t.Errorf("lines %q", w.Lines)
	}
	if w := Words(Screen{Kind: Saved, Points: 3, Lang: "en"}); w.Title != "+3 points saved" || len(w.Lines) != 0 {
		t.Errorf("%+v", w)
	}
}

func TestWordsMessage(t *testing.T) {
	w := Words(Screen{Kind: AlreadySaved, EventTitle: "Yoga", Message: "Punt al gespaard (max. 1 / week)"})
	if len(w.Lines) != 1 || w.Lines[0] != "(max. 1 / week)" {
		t.Errorf("repeated headline not cut: %q", w.Lines)
	}
	msg := "Deze activiteit is afgelopen, je kan op deze activiteit geen punt meer sparen."
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
