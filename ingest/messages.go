package ingest

import (
	"fmt"
	"strconv"

	"github.com/uitpas/tap-kiosk/protocol"
)

// The end-user messages of each outcome, in the kiosk's languages. They are
// shown on the kiosk screen as they are, so they speak to the passholder, not
// to a technician, and they are short: the kiosk shows them on a 0.96-inch
// panel under its own headline, and a message that begins with that
// headline ("Punt al gespaard") is shown without it. A no-break space
// (\u00a0) holds a number to its word and, in French, a colon to what it
// follows; apostrophes are typographic (’).

var periodWords = map[string][3]string{ // nl, fr, en
	protocol.PeriodDay:     {"dag", "jour", "day"},
	protocol.PeriodWeek:    {"week", "semaine", "week"},
	protocol.PeriodMonth:   {"maand", "mois", "month"},
	protocol.PeriodQuarter: {"kwartaal", "trimestre", "quarter"},
	protocol.PeriodYear:    {"jaar", "an", "year"},
}

// savedMessage is the passholder's total: the kiosk's headline says what
// this tap saved ("+1 punt gespaard", "+0" for a check-in without points),
// so the message does not say it again.
func savedMessage(points, total int) map[string]string {
	nl, fr, en := "punten", "points", "points"
	if total == 1 {
		nl, fr, en = "punt", "point", "point"
	}
	// One per saved checkin, so built from one string: no Sprintf, and
	// the three messages share one allocation.
	n := strconv.Itoa(total)
	all := "Totaal: " + n + "\u00a0" + nl + "Total\u00a0: " + n + "\u00a0" + fr + "Total: " + n + "\u00a0" + en
	i := len("Totaal: \u00a0") + len(n) + len(nl)
	j := i + len("Total\u00a0: \u00a0") + len(n) + len(fr)
	return map[string]string{"nl": all[:i], "fr": all[i:j], "en": all[j:]}
}

func maximumMessage(period string, volume int) map[string]string {
	w, ok := periodWords[period]
	if !ok { // ABSOLUTE: once per activity
		w = [3]string{"activiteit", "activité", "activity"}
	}
	return map[string]string{
		"nl": fmt.Sprintf("Punt al gespaard: max.\u00a0%d\u00a0per %s", volume, w[0]),
		"fr": fmt.Sprintf("Point déjà épargné\u00a0: max.\u00a0%d\u00a0par %s", volume, w[1]),
		"en": fmt.Sprintf("Point already collected: max.\u00a0%d\u00a0per %s", volume, w[2]),
	}
}

var (
	msgBlocked = map[string]string{
		"nl": "Kaart geblokkeerd. Meld je aan de balie.",
		"fr": "Carte bloquée. Adressez-vous à l’accueil.",
		"en": "Card blocked. Please go to the desk.",
	}
	msgNoPassholder = map[string]string{
		"nl": "Kaart niet herkend. Meld je aan de balie.",
		"fr": "Carte non reconnue. Adressez-vous à l’accueil.",
		"en": "Card not recognised. Please go to the desk.",
	}
	msgNotStarted = map[string]string{
		"nl": "Deze activiteit is nog niet begonnen.",
		"fr": "Cette activité n’a pas encore commencé.",
		"en": "This activity hasn’t started yet.",
	}
	msgEnded = map[string]string{
		"nl": "Deze activiteit is afgelopen.",
		"fr": "Cette activité est terminée.",
		"en": "This activity has ended.",
	}
	msgNoEvent = map[string]string{
		"nl": "Deze activiteit is niet gekend. Meld je aan de balie.",
		"fr": "Activité inconnue. Adressez-vous à l’accueil.",
		"en": "This activity is unknown. Please go to the desk.",
	}
	msgInvalid = map[string]string{
		"nl": "Er ging iets mis. Meld je aan de balie.",
		"fr": "Erreur inattendue. Adressez-vous à l’accueil.",
		"en": "Something went wrong. Please go to the desk.",
	}
)

// Refusals of the assignment and date rules (assign.go): the passholder
// did nothing wrong, so the kiosk sends them to the desk.
var (
	msgNotHere = map[string]string{
		"nl": "Hier kan je niet sparen voor deze activiteit. Meld je aan de balie.",
		"fr": "Ici, vous ne pouvez pas épargner pour cette activité. Adressez-vous à l’accueil.",
		"en": "You can’t collect points for this activity here. Please go to the desk.",
	}
	msgBadDate = map[string]string{
		"nl": "Je punt is niet gespaard. De klok van deze zuil loopt fout. Meld je aan de balie.",
		"fr": "Votre point n’est pas épargné. L’horloge de cette borne n’est pas à l’heure. Adressez-vous à l’accueil.",
		"en": "Your point was not collected. This kiosk’s clock is wrong. Please go to the desk.",
	}
)
