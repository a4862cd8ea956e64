package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Columns are the table's columns, as named in the CSV header, the JSON
// rows and the text table: "quarter" first for a quarter's report; the
// grouping's keys (counterId, eventId, deviceId or day); checkins, saved,
// points, passholders; one per refusal status (Refusals: maximum-reached,
// card-blocked, …); with a LocalSource, local-already-saved, local-blocked,
// … (LocalOutcomes).
func (t *Table) Columns() []string {
	var c []string
	if !t.Query.Quarter.IsZero() {
		c = append(c, "quarter")
	}
	c = append(c, t.Query.By.keyColumns()...)
	c = append(c, "checkins", "saved", "points", "passholders")
	c = append(c, Refusals()...)
	if t.Query.Local != nil {
		for _, o := range LocalOutcomes() {
			c = append(c, "local-"+o)
		}
	}
	return c
}

// cells is one row's values in column order; numeric says which are counts.
func (t *Table) cells(r Row) (vals []string, numeric []bool) {
	add := func(s string, n bool) { vals = append(vals, s); numeric = append(numeric, n) }
	if !t.Query.Quarter.IsZero() {
		add(t.Query.Quarter.String(), false)
	}
	for _, k := range r.Key.values(t.Query.By) {
		add(k, false)
	}
	for _, n := range []int64{r.Checkins, r.Saved, r.Points, r.Passholders} {
		add(strconv.FormatInt(n, 10), true)
	}
	for _, s := range Refusals() {
		add(strconv.FormatInt(r.Refused[s], 10), true)
	}
	if t.Query.Local != nil {
		for _, o := range LocalOutcomes() {
			add(strconv.FormatInt(r.Local[o], 10), true)
		}
	}
	return vals, numeric
}

// WriteCSV writes the table as CSV (RFC 4180, comma, a header line of
// Columns, one line per row).
func (t *Table) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(t.Columns()); err != nil {
		return fmt.Errorf("report: csv: %w", err)
	}
	for _, r := range t.Rows {
		v, _ := t.cells(r)
		if err := cw.Write(v); err != nil {
			return fmt.Errorf("report: csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("report: csv: %w", err)
	}
	return nil
}

// WriteJSON writes the table as one JSON object: by, timeZone, from and to
// (the days, included; absent when open), quarter (when set), columns, and
// rows, each an object of the columns in order (counts as numbers).
func (t *Table) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	str := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	q := t.Query
	fmt.Fprintf(bw, `{"by":%s,"timeZone":%s`, str(string(q.By)), str(q.Location.String()))
	if !q.From.IsZero() {
		fmt.Fprintf(bw, `,"from":%s`, str(q.From.String()))
	}
	if !q.To.IsZero() {
		fmt.Fprintf(bw, `,"to":%s`, str(q.To.String()))
	}
	if !q.Quarter.IsZero() {
		fmt.Fprintf(bw, `,"quarter":%s`, str(q.Quarter.String()))
	}
	cols := t.Columns()
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = str(c)
	}
	fmt.Fprintf(bw, `,"columns":[%s],"rows":[`, strings.Join(quoted, ","))
	for i, r := range t.Rows {
		if i > 0 {
			bw.WriteString(",")
		}
		v, num := t.cells(r)
		bw.WriteString("{")
		for j := range v {
			if j > 0 {
				bw.WriteString(",")
			}
			val := v[j]
			if !num[j] {
				val = str(val)
			}
			bw.WriteString(quoted[j] + ":" + val)
		}
		bw.WriteString("}")
	}
	bw.WriteString("]}\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: json: %w", err)
	}
	return nil
}

// WriteText writes the table for a terminal: a line saying what was
// counted, then aligned columns.
func (t *Table) WriteText(w io.Writer) error {
	q := t.Query
	rng := "all days"
	switch {
	case !q.Quarter.IsZero():
		rng = fmt.Sprintf("%s (%s to %s)", q.Quarter, q.From, q.To)
	case !q.From.IsZero() && !q.To.IsZero():
		rng = fmt.Sprintf("%s to %s", q.From, q.To)
	case !q.From.IsZero():
		rng = fmt.Sprintf("from %s", q.From)
	case !q.To.IsZero():
		rng = fmt.Sprintf("to %s", q.To)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "by %s, %s, days in %s by booked tap time; %d rows\n", q.By, rng, q.Location, len(t.Rows))
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.Columns(), "\t")+"\t")
	for _, r := range t.Rows {
		v, _ := t.cells(r)
		for i := range v {
			if v[i] == "" {
				v[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(v, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("report: text: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: text: %w", err)
	}
	return nil
}
