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
}

type phrases struct {
	tap, saved1, savedN, total, already, blocked, notRec, unreadable,
	noEvent, notAllowed, queueFull, storage, fault, desk, provisioning,
	pairing, device, spaar, spaarHint string
}

var dict = map[string]phrases{
	"nl": {
		tap: "Tik je UiTPAS", saved1: "+%d punt gespaard", savedN: "+%d punten gespaard",
		total: "Totaal: %d", already: "Punt al gespaard", blocked: "Kaart geblokkeerd",
		notRec: "Kaart niet herkend", unreadable: "Kaart niet leesbaar",
		noEvent: "Nu geen activiteit", notAllowed: "Sparen kan nu niet",
		queueFull: "Geheugen vol", storage: "Opslagfout", fault: "Technische storing",
		desk: "Meld je aan de balie", provisioning: "Nog niet ingesteld", pairing: "Code: %s",
		device: "Toestel: %s", spaar: "Spaar met de app", spaarHint: "Scan de spaarcode",
	},
	"fr": {
		tap: "Présentez votre UiTPAS", saved1: "+%d point épargné", savedN: "+%d points épargnés",
		total: "Total : %d", already: "Point déjà épargné", blocked: "Carte bloquée",
		notRec: "Carte non reconnue", unreadable: "Carte illisible",
		noEvent: "Pas d'activité", notAllowed: "Épargne impossible",
		queueFull: "Mémoire pleine", storage: "Erreur de stockage", fault: "Panne technique",
		desk: "Adressez-vous à l'accueil", provisioning: "Pas encore configuré", pairing: "Code : %s",
		device: "Appareil : %s", spaar: "Épargnez via l'app", spaarHint: "Scannez le code",
	},
	"en": {
		tap: "Tap your UiTPAS", saved1: "+%d point saved", savedN: "+%d points saved",
		total: "Total: %d", already: "Point already saved", blocked: "Card blocked",
		notRec: "Card not recognised", unreadable: "Card unreadable",
		noEvent: "No activity now", notAllowed: "Saving not possible now",
		queueFull: "Storage full", storage: "Storage error", fault: "Technical fault",
		desk: "Please go to the desk", provisioning: "Not set up yet", pairing: "Code: %s",
		device: "Device: %s", spaar: "Save with the app", spaarHint: "Scan the code",
	},
}

// Words returns the words of s in its language (Dutch when the language is
// unknown or empty).
func Words(s Screen) Text {
	p, ok := dict[s.Lang]
	if !ok {
		p = dict["nl"]
	}
	var t Text
	switch s.Kind {
	case Idle:
		t.Title = p.tap
		if s.EventTitle != "" {
			t.Lines = []string{s.EventTitle}
		}
	case Saved:
		if s.Points == 1 {
			t.Title = fmt.Sprintf(p.saved1, s.Points)
		} else {
			t.Title = fmt.Sprintf(p.savedN, s.Points)
		}
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
		t.Title = p.unreadable
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
	}
	return t
}

// Plain renders s as one line of text, for logs and the control socket.
func Plain(s Screen) string {
	t := Words(s)
	return strings.Join(append([]string{t.Title}, t.Lines...), " — ")
}
