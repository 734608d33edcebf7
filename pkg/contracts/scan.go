package contracts

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// jsonMaxDepth is the nesting json.Valid rejects beyond.
const jsonMaxDepth = 10000

// scan checks in one pass that b is a JSON object starting at b[i], nested
// no deeper than maxDepth, with nothing after it but whitespace, and records
// the values of its known top-level keys in r. ok is false for anything
// json.Valid rejects, for strings holding invalid UTF-8 and for nesting too
// deep; dup is then meaningless, and
// otherwise it is the error for the first duplicated known key, which must
// wait until the whole input is known to be valid JSON.
func (r *rawFields) scan(b []byte, i, maxDepth int) (dup *ValidationError, ok bool) {
	s := scanner{b: b, limit: min(maxDepth, jsonMaxDepth), record: true, strictUTF8: true}
	end := s.object(i, 1)
	if end < 0 || skipSpace(b, end) != len(b) {
		return nil, false
	}
	*r = s.top
	return s.dup, true
}

// scanner validates JSON values by the grammar json.Valid applies: RFC 8259,
// with invalid UTF-8 allowed inside strings, and objects and arrays nested
// no deeper than limit. Its methods return the index after the value that
// starts at b[i], or -1 when it is not valid.
type scanner struct {
	b     []byte
	limit int
	// With record set, top receives the members of the outermost object
	// and dup is the first duplicated known key among them.
	record bool
	top    rawFields
	dup    *ValidationError
	// With strictUTF8 set, a string holding invalid UTF-8 is not valid
	// either (RFC 8259 §8.1; json.Valid accepts it).
	strictUTF8 bool
}

// value scans the value at b[i], which sits inside depth objects and arrays.
func (s *scanner) value(i, depth int) int {
	b := s.b
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; c {
	case '"':
		return s.str(i)
	case '{':
		return s.object(i, depth+1)
	case '[':
		return s.array(i, depth+1)
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return number(b, i)
	}
	return -1
}

// object scans the object at b[i], which is at nesting level depth.
func (s *scanner) object(i, depth int) int {
	if depth > s.limit {
		return -1
	}
	b := s.b
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		key := i
		if i = s.str(i); i < 0 {
			return -1
		}
		kend := i
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		start := skipSpace(b, i+1)
		if i = s.value(start, depth); i < 0 {
			return -1
		}
		if depth == 1 && s.record && s.dup == nil {
			s.dup = s.top.set(b[key:kend], b[start:i])
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1
		default:
			return -1
		}
	}
}

// array scans the array at b[i], which is at nesting level depth.
func (s *scanner) array(i, depth int) int {
	if depth > s.limit {
		return -1
	}
	b := s.b
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1
	}
	for {
		if i = s.value(i, depth); i < 0 {
			return -1
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1
		default:
			return -1
		}
	}
}

// SWAR constants: a byte repeated in every lane of a uint64.
const (
	lanes01 = 0x0101010101010101
	lanes80 = 0x8080808080808080
)

// stopBytes returns the eight bytes of v, in memory order, with the top bit
// of a lane set where the byte ends a run of plain string bytes: a control
// character, '"' or '\\'. Lanes above the first such one may be set too
// (borrows), so only the lowest set lane is meaningful.
func stopBytes(v uint64) uint64 {
	// XOR 0x02 moves '"' to 0x20 and keeps control characters below 0x20,
	// so one "less than 0x21" test finds both.
	x, bs := v^(lanes01*0x02), v^(lanes01*'\\')
	return ((x-lanes01*0x21)&^x | (bs-lanes01)&^bs) & lanes80
}

// str scans the string whose opening quote is b[i].
func (s *scanner) str(i int) int {
	b := s.b
	i++
	for {
		// Eight bytes at a time up to the first quote, backslash or
		// control character: strings are most of an envelope's bytes.
		var high uint64 // with strictUTF8, also stop at non-ASCII bytes
		if s.strictUTF8 {
			high = lanes80
		}
		for len(b)-i >= 8 {
			v := binary.LittleEndian.Uint64(b[i:])
			if m := stopBytes(v) | v&high; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		case c >= utf8.RuneSelf && s.strictUTF8:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return -1
			}
			i += n
		default:
			i++
		}
	}
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i]; the
// caller checks what follows.
func number(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || !isDigit(b[i+1]) {
			return -1
		}
		i = digits(b, i+2)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = digits(b, i+1)
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
