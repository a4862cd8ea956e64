package display

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
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
	tap, saved1, savedN, total1, totalN, already, blocked, notRec, unreadable, useUiTPAS,
	noEvent, notAllowed, queueFull, storage, fault, desk, provisioning,
	pairing, device, spaar, spaarHint string
}

// The words of each language, as a passholder there would say them. A
// no-break space holds a number to its word ("23 punten") and, in French,
// the colon to what it follows; French apostrophes are typographic (’).
// Every text fits the 128×64 panel at a legible size (render's tests
// measure them).
var dict = map[string]phrases{
	"nl": {
		tap: "Houd je UiTPAS tegen de lezer", saved1: "punt gespaard", savedN: "punten gespaard",
		total1: "Totaal: %d\u00a0punt", totalN: "Totaal: %d\u00a0punten",
		already: "Punt al gespaard", blocked: "Kaart geblokkeerd", notRec: "Kaart niet herkend",
		unreadable: "Deze kaart werkt hier niet", useUiTPAS: "Gebruik je UiTPAS",
		noEvent: "Nu geen activiteit", notAllowed: "Sparen kan nu niet",
		queueFull: "Geheugen vol", storage: "Opslagfout", fault: "Technische storing",
		desk: "Meld je aan de balie", provisioning: "Nog niet ingesteld", pairing: "Code: %s",
		device: "Toestel: %s", spaar: "Spaar met de app", spaarHint: "Scan deze spaarcode",
	},
	"fr": {
		tap: "Présentez votre UiTPAS", saved1: "point épargné", savedN: "points épargnés",
		total1: "Total\u00a0: %d\u00a0point", totalN: "Total\u00a0: %d\u00a0points",
		already: "Point déjà épargné", blocked: "Carte bloquée", notRec: "Carte non reconnue",
		unreadable: "Carte non acceptée ici", useUiTPAS: "Utilisez votre UiTPAS",
		noEvent: "Aucune activité en cours", notAllowed: "Épargne impossible",
		queueFull: "Mémoire pleine", storage: "Erreur de stockage", fault: "Panne technique",
		desk: "Adressez-vous à l’accueil", provisioning: "Pas encore configuré", pairing: "Code\u00a0: %s",
		device: "Appareil\u00a0: %s", spaar: "Épargnez avec l’app", spaarHint: "Scannez ce code",
	},
	"en": {
		tap: "Tap your UiTPAS", saved1: "point collected", savedN: "points collected",
		total1: "Total: %d\u00a0point", totalN: "Total: %d\u00a0points",
		already: "Point already collected", blocked: "Card blocked", notRec: "Card not recognised",
		unreadable: "Card not accepted here", useUiTPAS: "Please use your UiTPAS",
		noEvent: "No activity right now", notAllowed: "Can’t collect points right now",
		queueFull: "Storage full", storage: "Storage error", fault: "Technical fault",
		desk: "Please go to the desk", provisioning: "Not set up yet", pairing: "Code: %s",
		device: "Device: %s", spaar: "Collect points with the app", spaarHint: "Scan this code",
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
			total := p.totalN
			if s.Total == 1 {
				total = p.total1
			}
			t.Lines = []string{fmt.Sprintf(total, s.Total)}
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
		// A phone or a bank card: trying again will not help.
		t.Title, t.Lines = p.unreadable, []string{p.useUiTPAS}
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
		// "Punt al gespaard: max. 1 per week" under the headline "Punt al
		// gespaard" would say it twice: keep only what the message adds.
		if rest, ok := cutPrefixFold(s.Message, t.Title); ok && rest != "" {
			t.Lines = []string{upperFirst(rest)}
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
	return strings.TrimLeft(s[len(prefix):], " \u00a0.,:;–—-"), true
}

// upperFirst capitalises the first letter of s: what is left of a message
// after its headline starts a line of its own.
func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}
