package display

import (
	"fmt"
	"strings"
)

// Languages offered.
var Languages = []string{"nl", "fr", "en"}

// Text is a screen in words: a headline and detail lines.
type Text struct {
	Title  string
	Lines  []string
	Footer string
	// Figure and Caption split Title for outputs that show a figure large:
	// Title "+1 punt gespaard" is Figure "+1" and Caption "punt gespaard".
	// Both are empty for screens without a figure.
	Figure, Caption string
}

type phrases struct {
	tap, saved1, savedN, total, already, blocked, notRec, unreadable, retry,
	noEvent, notAllowed, queueFull, storage, fault, desk, provisioning,
	pairing, device, spaar, spaarHint string
}

// The French texts use typographic apostrophes and a no-break space before
// the colon; the renderers draw both.
var dict = map[string]phrases{
	"nl": {
		tap: "Tik je UiTPAS", saved1: "punt gespaard", savedN: "punten gespaard",
		total: "Totaal: %d", already: "Punt al gespaard", blocked: "Kaart geblokkeerd",
		notRec: "Kaart niet herkend", unreadable: "Kaart niet leesbaar", retry: "Probeer opnieuw",
		noEvent: "Nu geen activiteit", notAllowed: "Sparen kan nu niet",
		queueFull: "Geheugen vol", storage: "Opslagfout", fault: "Technische storing",
		desk: "Meld je aan de balie", provisioning: "Nog niet ingesteld", pairing: "Code: %s",
		device: "Toestel: %s", spaar: "Spaar met de app", spaarHint: "Scan deze spaarcode",
	},
	"fr": {
		tap: "Présentez votre UiTPAS", saved1: "point épargné", savedN: "points épargnés",
		total: "Total\u00a0: %d", already: "Point déjà épargné", blocked: "Carte bloquée",
		notRec: "Carte non reconnue", unreadable: "Carte illisible", retry: "Réessayez",
		noEvent: "Aucune activité en cours", notAllowed: "Épargne impossible pour l’instant",
		queueFull: "Mémoire pleine", storage: "Erreur de stockage", fault: "Panne technique",
		desk: "Adressez-vous à l’accueil", provisioning: "Pas encore configuré", pairing: "Code\u00a0: %s",
		device: "Appareil\u00a0: %s", spaar: "Épargnez avec l’app", spaarHint: "Scannez ce code",
	},
	"en": {
		tap: "Tap your UiTPAS", saved1: "point saved", savedN: "points saved",
		total: "Total: %d", already: "Point already saved", blocked: "Card blocked",
		notRec: "Card not recognised", unreadable: "Card unreadable", retry: "Please try again",
		noEvent: "No activity now", notAllowed: "Saving not possible now",
		queueFull: "Storage full", storage: "Storage error", fault: "Technical fault",
		desk: "Please go to the desk", provisioning: "Not set up yet", pairing: "Code: %s",
		device: "Device: %s", spaar: "Save with the app", spaarHint: "Scan this code",
	},
}

// lang picks the phrases for a language tag: "fr", "FR" and "fr-BE" are
// French; anything unknown is Dutch.
func lang(tag string) phrases {
	tag = strings.ToLower(tag)
	if i := strings.IndexAny(tag, "-_"); i >= 0 {
		tag = tag[:i]
	}
	if p, ok := dict[tag]; ok {
		return p
	}
	return dict["nl"]
}

// Words returns the words of s in its language (Dutch when the language is
// unknown or empty).
func Words(s Screen) Text {
	p := lang(s.Lang)
	var t Text
	switch s.Kind {
	case Idle:
		t.Title = p.tap
		if s.EventTitle != "" {
			t.Lines = []string{s.EventTitle}
		}
	case Saved:
		t.Figure, t.Caption = fmt.Sprintf("+%d", s.Points), p.savedN
		if s.Points == 1 {
			t.Caption = p.saved1
		}
		t.Title = t.Figure + " " + t.Caption
		if s.HasTotal {
			t.Lines = []string{fmt.Sprintf(p.total, s.Total)}
		}
	case AlreadySaved:
		t.Title = p.already
		if s.EventTitle != "" {
			t.Lines = []string{s.EventTitle}
		}
	case Blocked:
		t.Title, t.Lines = p.blocked, []string{p.desk}
	case NotRecognised:
		t.Title, t.Lines = p.notRec, []string{p.desk}
	case Unreadable:
		t.Title, t.Lines = p.unreadable, []string{p.retry}
	case NoEvent:
		t.Title = p.noEvent
	case NotAllowed:
		t.Title = p.notAllowed
	case QueueFull:
		t.Title, t.Lines = p.queueFull, []string{p.desk}
	case StorageError:
		t.Title, t.Lines = p.storage, []string{p.desk}
	case Fault:
		t.Title, t.Lines = p.fault, []string{p.desk}
	case Provisioning:
		t.Title = p.provisioning
		t.Lines = []string{fmt.Sprintf(p.device, s.DeviceID), fmt.Sprintf(p.pairing, s.Code)}
	case Spaarcode:
		t.Title, t.Lines = p.spaar, []string{p.spaarHint}
	default:
		t.Title = string(s.Kind)
	}
	if s.Message != "" {
		t.Lines = []string{s.Message}
		// "Punt al gespaard (max. 1 / week)" under the headline "Punt al
		// gespaard" would say it twice: keep only what the message adds.
		if rest, ok := cutPrefixFold(s.Message, t.Title); ok && rest != "" {
			t.Lines = []string{rest}
		}
	}
	return t
}

// Plain renders s as one line of text, for logs and the control socket.
func Plain(s Screen) string {
	t := Words(s)
	return strings.Join(append([]string{t.Title}, t.Lines...), " — ")
}

// cutPrefixFold cuts prefix from s, ignoring case, and trims the spaces and
// punctuation that joined them.
func cutPrefixFold(s, prefix string) (string, bool) {
	if prefix == "" || len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return strings.TrimLeft(s[len(prefix):], " .,:;–—-"), true
}
