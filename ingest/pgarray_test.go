package ingest

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// TestParamsAsPgx checks each array the batch's writes encode themselves
// against pgx's own binary encoding of the same value, byte for byte:
// empty, one element, and the edges of each type.
func TestParamsAsPgx(t *testing.T) {
	m := pgtype.NewMap()
	cases := []struct {
		name string
		oid  uint32
		v    any
		add  func(*params) error
	}{}
	addCase := func(name string, oid uint32, v any, add func(*params) error) {
		cases = append(cases, struct {
			name string
			oid  uint32
			v    any
			add  func(*params) error
		}{name, oid, v, add})
	}
	for _, v := range [][]string{{}, {""}, {"04B0000000001A", "é\u00a0€", string(make([]byte, 300))}} {
		addCase("text", pgtype.TextArrayOID, v, func(p *params) error { p.text(v); return nil })
	}
	for _, v := range [][][]byte{{}, {{}}, {[]byte(`{"v":1}`), bytes.Repeat([]byte{0xff}, 5000)}} {
		addCase("bytea", pgtype.ByteaArrayOID, v, func(p *params) error { p.bytea(v); return nil })
	}
	for _, v := range [][]int64{{}, {0}, {math.MinInt64, -1, 1, math.MaxInt64}} {
		addCase("int8", pgtype.Int8ArrayOID, v, func(p *params) error { p.int8(v); return nil })
	}
	for _, v := range [][]int32{{}, {0}, {math.MinInt32, -1, 1, math.MaxInt32}} {
		addCase("int4", pgtype.Int4ArrayOID, v, func(p *params) error { p.int4(v); return nil })
	}
	for _, v := range [][]bool{{}, {true}, {false, true, false}} {
		addCase("bool", pgtype.BoolArrayOID, v, func(p *params) error { p.bool(v); return nil })
	}
	for _, v := range [][]pgtype.TID{{}, {{BlockNumber: 0, OffsetNumber: 1, Valid: true}},
		{{BlockNumber: math.MaxUint32, OffsetNumber: math.MaxUint16, Valid: true}, {BlockNumber: 7, OffsetNumber: 300, Valid: true}}} {
		addCase("tid", pgtype.TIDArrayOID, v, func(p *params) error { return p.tid(v) })
	}
	var p params
	for _, tc := range cases {
		want, err := m.Encode(tc.oid, pgtype.BinaryFormatCode, tc.v, nil)
		if err != nil {
			t.Fatalf("%s %v: pgx: %v", tc.name, tc.v, err)
		}
		p.reset()
		p.text([]string{"before"}) // a parameter ahead of it: values slices the buffer
		if err := tc.add(&p); err != nil {
			t.Fatalf("%s %v: %v", tc.name, tc.v, err)
		}
		vals := p.values()
		if len(vals) != 2 || len(p.oids) != 2 || p.oids[1] != tc.oid {
			t.Fatalf("%s: %d values, types %v", tc.name, len(vals), p.oids)
		}
		if !bytes.Equal(vals[1], want) {
			t.Errorf("%s %v:\n got % x\nwant % x", tc.name, tc.v, vals[1], want)
		}
	}
	p.reset()
	if err := p.tid([]pgtype.TID{{BlockNumber: 1, OffsetNumber: 1}}); err == nil {
		t.Error("an invalid row address was encoded")
	}
}

// TestWriterRefusesOtherTypes: a statement whose parameters the server
// describes as other types than the batch encoded is not sent.
func TestWriterRefusesOtherTypes(t *testing.T) {
	w := &writer{p: &params{}}
	w.sds[wEnroll] = &pgconn.StatementDescription{ParamOIDs: []uint32{pgtype.TextArrayOID, pgtype.Int4ArrayOID, pgtype.TextArrayOID}}
	w.p.text([]string{"04B0000000001A"})
	w.p.int8([]int64{1}) // int4 expected
	w.p.text([]string{"2026-12-03T10:00:00.000Z"})
	if err := w.send(wEnroll, nil); err == nil || !strings.Contains(err.Error(), "types") {
		t.Fatalf("err %v, want the types refused", err)
	}
	if len(w.steps) != 0 {
		t.Fatal("a step recorded for a statement not sent")
	}
}
