package ingest

import (
	"fmt"

	"github.com/uitpas/tap-kiosk/protocol"
)

// The end-user messages of each outcome, in the kiosk's languages. They are
// shown on the kiosk screen as they are, so they speak to the passholder, not
// to a technician.

var periodWords = map[string][3]string{ // nl, fr, en
	protocol.PeriodDay:     {"dag", "jour", "day"},
	protocol.PeriodWeek:    {"week", "semaine", "week"},
	protocol.PeriodMonth:   {"maand", "mois", "month"},
	protocol.PeriodQuarter: {"kwartaal", "trimestre", "quarter"},
	protocol.PeriodYear:    {"jaar", "an", "year"},
}

func savedMessage(points, total int) map[string]string {
	if points == 0 {
		return map[string]string{
			"nl": fmt.Sprintf("Je bent ingecheckt. Totaal: %d.", total),
			"fr": fmt.Sprintf("Vous êtes enregistré. Total : %d.", total),
			"en": fmt.Sprintf("You are checked in. Total: %d.", total),
		}
	}
	nl, fr, en := "punt", "point", "point"
	if points != 1 {
		nl, fr, en = "punten", "points", "points"
	}
	return map[string]string{
		"nl": fmt.Sprintf("Je spaarde %d %s. Totaal: %d.", points, nl, total),
		"fr": fmt.Sprintf("Vous avez épargné %d %s. Total : %d.", points, fr, total),
		"en": fmt.Sprintf("You saved %d %s. Total: %d.", points, en, total),
	}
}

func maximumMessage(period string, volume int) map[string]string {
	w, ok := periodWords[period]
	if !ok { // ABSOLUTE: once per activity
		return map[string]string{
			"nl": fmt.Sprintf("Punt al gespaard (max. %d voor deze activiteit)", volume),
			"fr": fmt.Sprintf("Point déjà épargné (max. %d pour cette activité)", volume),
			"en": fmt.Sprintf("Point already saved (max. %d for this activity)", volume),
		}
	}
	return map[string]string{
		"nl": fmt.Sprintf("Punt al gespaard (max. %d / %s)", volume, w[0]),
		"fr": fmt.Sprintf("Point déjà épargné (max. %d / %s)", volume, w[1]),
		"en": fmt.Sprintf("Point already saved (max. %d / %s)", volume, w[2]),
	}
}

var (
	msgBlocked = map[string]string{
		"nl": "Deze kaart is geblokkeerd. Meld je aan de balie.",
		"fr": "Cette carte est bloquée. Adressez-vous à l'accueil.",
		"en": "This card is blocked. Please go to the desk.",
	}
	msgNoPassholder = map[string]string{
		"nl": "Deze kaart is geen gekende UiTPAS. Meld je aan de balie.",
		"fr": "Cette carte n'est pas une UiTPAS connue. Adressez-vous à l'accueil.",
		"en": "This card is not a known UiTPAS. Please go to the desk.",
	}
	msgNotStarted = map[string]string{
		"nl": "Deze activiteit is nog niet begonnen, je kan nog geen punt sparen.",
		"fr": "Cette activité n'a pas encore commencé, vous ne pouvez pas encore épargner.",
		"en": "This activity has not started yet, you cannot save a point yet.",
	}
	msgEnded = map[string]string{
		"nl": "Deze activiteit is afgelopen, je kan op deze activiteit geen punt meer sparen.",
		"fr": "Cette activité est terminée, vous ne pouvez plus épargner de point.",
		"en": "This activity has ended, you can no longer save a point for it.",
	}
	msgNoEvent = map[string]string{
		"nl": "Deze activiteit is niet gekend. Meld je aan de balie.",
		"fr": "Cette activité est inconnue. Adressez-vous à l'accueil.",
		"en": "This activity is unknown. Please go to the desk.",
	}
	msgInvalid = map[string]string{
		"nl": "Deze kaart kon niet verwerkt worden. Meld je aan de balie.",
		"fr": "Cette carte n'a pas pu être traitée. Adressez-vous à l'accueil.",
		"en": "This card could not be processed. Please go to the desk.",
	}
)

// Refusals of the assignment and date rules (assign.go): the passholder
// did nothing wrong, so the kiosk sends them to the desk.
var (
	msgNotHere = map[string]string{
		"nl": "Voor deze activiteit kan je hier geen punt sparen. Meld je aan de balie.",
		"fr": "Vous ne pouvez pas épargner de point ici pour cette activité. Adressez-vous à l’accueil.",
		"en": "You cannot collect a point for this activity here. Please go to the desk.",
	}
	msgBadDate = map[string]string{
		"nl": "De klok van deze zuil klopt niet, je punt kon niet gespaard worden. Meld je aan de balie.",
		"fr": "L’horloge de cette borne n’est pas à l’heure, votre point n’a pas pu être épargné. Adressez-vous à l’accueil.",
		"en": "This kiosk’s clock is wrong, your point could not be collected. Please go to the desk.",
	}
)
