package ingest

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

// params are a statement's parameters in PostgreSQL's binary form, for the
// batch's writes (pgwrite.go): one-dimensional arrays without NULLs
// (array_recv's format), encoded into one buffer that a batch reuses from
// statement to statement. pgx encodes an array through its type map, one
// element at a time into a buffer that starts small for each statement
// and grows by copying: at 256 checkins a batch, a fifth of the ledger's
// Go time (CPU profile, 163 840 checkins) and 38 % of what it allocated
// (memory profile, 20 480). Which type each parameter is for, the
// statement says (its $n::type[] casts); writer.send checks the server's
// description against the types appended here.
type params struct {
	buf  []byte
	ends []int    // where each parameter ends in buf
	oids []uint32 // each parameter's array type
	vals [][]byte
}

func (p *params) reset() {
	p.buf, p.ends, p.oids = p.buf[:0], p.ends[:0], p.oids[:0]
}

// header starts an array of n elements of type elem (as arrayOID): one
// dimension, of length 0 for an empty one, as pgx writes it.
func (p *params) header(arrayOID, elem uint32, n int) {
	p.oids = append(p.oids, arrayOID)
	p.buf = binary.BigEndian.AppendUint32(p.buf, 1) // dimensions
	p.buf = binary.BigEndian.AppendUint32(p.buf, 0) // no NULLs
	p.buf = binary.BigEndian.AppendUint32(p.buf, elem)
	p.buf = binary.BigEndian.AppendUint32(p.buf, uint32(n))
	p.buf = binary.BigEndian.AppendUint32(p.buf, 1) // lower bound
}

func (p *params) end() { p.ends = append(p.ends, len(p.buf)) }

func (p *params) text(v []string) { varlen(p, pgtype.TextArrayOID, pgtype.TextOID, v) }

// bytea sends a nil element as an empty value, not as NULL: the arrays
// written hold no NULLs.
func (p *params) bytea(v [][]byte) { varlen(p, pgtype.ByteaArrayOID, pgtype.ByteaOID, v) }

// varlen appends an array of elements that are their bytes as they are
// (text, bytea), each after its length.
func varlen[T string | []byte](p *params, arrayOID, elem uint32, v []T) {
	p.header(arrayOID, elem, len(v))
	for _, x := range v {
		p.buf = binary.BigEndian.AppendUint32(p.buf, uint32(len(x)))
		p.buf = append(p.buf, x...)
	}
	p.end()
}

func (p *params) int8(v []int64) {
	p.header(pgtype.Int8ArrayOID, pgtype.Int8OID, len(v))
	for _, x := range v {
		p.buf = binary.BigEndian.AppendUint32(p.buf, 8)
		p.buf = binary.BigEndian.AppendUint64(p.buf, uint64(x))
	}
	p.end()
}

func (p *params) int4(v []int32) {
	p.header(pgtype.Int4ArrayOID, pgtype.Int4OID, len(v))
	for _, x := range v {
		p.buf = binary.BigEndian.AppendUint32(p.buf, 4)
		p.buf = binary.BigEndian.AppendUint32(p.buf, uint32(x))
	}
	p.end()
}

func (p *params) bool(v []bool) {
	p.header(pgtype.BoolArrayOID, pgtype.BoolOID, len(v))
	for _, x := range v {
		p.buf = binary.BigEndian.AppendUint32(p.buf, 1)
		if x {
			p.buf = append(p.buf, 1)
		} else {
			p.buf = append(p.buf, 0)
		}
	}
	p.end()
}

// tid is a row address as selHolders read it (ctid); an invalid one (never
// read) is refused rather than sent as some row's address.
func (p *params) tid(v []pgtype.TID) error {
	p.header(pgtype.TIDArrayOID, pgtype.TIDOID, len(v))
	for _, t := range v {
		if !t.Valid {
			return fmt.Errorf("ingest: a row address not read")
		}
		p.buf = binary.BigEndian.AppendUint32(p.buf, 6)
		p.buf = binary.BigEndian.AppendUint32(p.buf, t.BlockNumber)
		p.buf = binary.BigEndian.AppendUint16(p.buf, t.OffsetNumber)
	}
	p.end()
	return nil
}

// values are the parameters appended since reset, as the protocol's Bind
// takes them. They point into the buffer: valid until the next reset.
func (p *params) values() [][]byte {
	p.vals = p.vals[:0]
	start := 0
	for _, e := range p.ends {
		p.vals = append(p.vals, p.buf[start:e:e])
		start = e
	}
	return p.vals
}
