// Package sqlbind numbers placeholders for PostgreSQL, so that the ledger,
// the fleet registry and the reports write each statement once, with ?
// as SQLite takes it.
package sqlbind

import (
	"strconv"
	"strings"
)

// Dollar rewrites the ? placeholders of q as $1, $2, …. The statements it is
// given have no ? inside string literals.
func Dollar(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
