package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// diffDecoders are the decoders every differential input runs through: the
// defaults, small limits that real inputs hit, a limit above encoding/json's
// own, and aliasing.
var diffDecoders = []Decoder{
	{},
	{MaxDepth: 3},
	{MaxDepth: 1},
	{MaxBytes: 256},
	{MaxDepth: 20000},
	{Alias: true},
	{MaxDepth: 3, MaxBytes: 300, Alias: true},
}

// checkSameAsReference fails unless d.Decode(in) and the frozen decoder
// agree: equal envelopes with byte-equal data and metadata, or errors of the
// same type, message and stage. It also checks how data and metadata share
// memory with in.
func checkSameAsReference(t *testing.T, d Decoder, in []byte) {
	t.Helper()
	orig := bytes.Clone(in)
	want, werr := referenceDecode(d, in)
	werr = strictReference(in, werr)
	if ce, ok := refCloudEvent(in, werr); ok {
		// The reference predates CloudEvents input: check against the
		// attributes as encoding/json reads them.
		checkCloudEvent(t, d, in, ce)
		return
	}
	var flat []refMember // the flat shape's data, when the input has no data object
	if werr == nil {
		flat, _ = refFlatMembers(in)
	}
	got, gerr := d.Decode(in)
	if !bytes.Equal(in, orig) {
		t.Fatalf("%+v: Decode modified its input", d)
	}
	if werr != nil || gerr != nil {
		if werr == nil || gerr == nil {
			t.Fatalf("%+v on %q:\ngot  %v\nwant %v", d, trim(in), gerr, werr)
		}
		if reflect.TypeOf(gerr) != reflect.TypeOf(werr) || gerr.Error() != werr.Error() {
			t.Fatalf("%+v on %q:\ngot  %T %v\nwant %T %v", d, trim(in), gerr, gerr, werr, werr)
		}
		gst, gok := StageOf(gerr)
		wst, wok := StageOf(werr)
		if gst != wst || gok != wok {
			t.Fatalf("%+v on %q: stage %q %v, want %q %v", d, trim(in), gst, gok, wst, wok)
		}
		var gd, wd *DecodeError
		if errors.As(gerr, &gd) && errors.As(werr, &wd) && reflect.TypeOf(gd.Err) != reflect.TypeOf(wd.Err) {
			t.Fatalf("%+v on %q: cause %T, want %T", d, trim(in), gd.Err, wd.Err)
		}
		var gv, wv *ValidationError
		if errors.As(gerr, &gv) && errors.As(werr, &wv) && (gv.Field != wv.Field || gv.Reason != wv.Reason) {
			t.Fatalf("%+v on %q: %+v, want %+v", d, trim(in), gv, wv)
		}
		return
	}
	if flat != nil {
		// The reference knows only the nested shape, where this input's
		// data is {}; the flat data is checked against the oracle.
		if gotMembers, ok := refMembers(got.Data); !ok || !reflect.DeepEqual(gotMembers, flat) {
			t.Fatalf("%+v on %q: flat data %q, want members %q", d, trim(in), got.Data, flat)
		}
		want.Data = got.Data
	}
	if !got.Equal(want) || !bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Metadata, want.Metadata) ||
		got.DataVersion != want.DataVersion || got.OccurredAt != want.OccurredAt {
		t.Fatalf("%+v on %q:\ngot  %+v\nwant %+v", d, trim(in), got, want)
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"data", got.Data}, {"metadata", got.Metadata}} {
		inside := within(in, f.v)
		if d.Alias && string(f.v) != "{}" && !inside && (f.name != "data" || flat == nil) {
			t.Fatalf("%+v on %q: %s does not alias the input", d, trim(in), f.name)
		}
		if !d.Alias && inside {
			t.Fatalf("%+v on %q: %s aliases the input", d, trim(in), f.name)
		}
		if cap(f.v) != len(f.v) {
			t.Fatalf("%s has spare capacity %d: appending to it would overwrite other bytes", f.name, cap(f.v)-len(f.v))
		}
	}
	if within(got.Data, got.Metadata) || within(got.Metadata, got.Data) {
		t.Fatalf("data and metadata overlap")
	}
}

// strictReference returns the error the reference's result werr becomes
// under the strict UTF-8 rule, which the reference predates: input that is
// valid JSON but not UTF-8 is a DecodeError naming the first bad byte.
func strictReference(in []byte, werr error) error {
	var de *DecodeError
	if utf8.Valid(in) || (werr != nil && errors.As(werr, &de) && !strings.HasPrefix(de.Reason, "not a JSON object")) {
		return werr
	}
	for i := 0; i < len(in); {
		r, n := utf8.DecodeRune(in[i:])
		if r == utf8.RuneError && n == 1 {
			return &DecodeError{Reason: fmt.Sprintf("invalid UTF-8 at byte offset %d", i)}
		}
		i += n
	}
	panic("unreachable")
}

// refCE is a CloudEvent's attributes as encoding/json reads them.
type refCE struct {
	SpecVersion   *string         `json:"specversion"`
	ID            *string         `json:"id"`
	Type          *string         `json:"type"`
	Source        *string         `json:"source"`
	Subject       *string         `json:"subject"`
	CorrelationID *string         `json:"correlationid"`
	CausationID   *string         `json:"causationid"`
	Data          json.RawMessage `json:"data"`
}

// refCloudEvent reports whether in is what Decode reads as a CloudEvent: a
// valid JSON object the reference rejects for lacking an eventId, with a
// specversion member.
func refCloudEvent(in []byte, werr error) (refCE, bool) {
	var ve *ValidationError
	if !errors.As(werr, &ve) || ve.Error() != "eventId: required" {
		return refCE{}, false
	}
	ms, ok := refMembers(in)
	if !ok || !slices.ContainsFunc(ms, func(m refMember) bool { return m.Key == "specversion" }) {
		return refCE{}, false
	}
	var ce refCE
	_ = json.Unmarshal(in, &ce) // a mistyped attribute leaves the others set
	return ce, true
}

// checkCloudEvent checks Decode's reading of the CloudEvent in against the
// reference attributes: on success, the mapped fields and data verbatim, and
// a lossless MarshalCloudEvent round trip; on failure, a ValidationError.
func checkCloudEvent(t *testing.T, d Decoder, in []byte, ce refCE) {
	t.Helper()
	got, err := d.Decode(in)
	if err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("%+v on CloudEvent %q: %T %v, want a ValidationError", d, trim(in), err, err)
		}
		return
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	data := bytes.TrimSpace(ce.Data)
	if len(data) == 0 || string(data) == "null" {
		data = []byte("{}")
	}
	if str(ce.SpecVersion) != "1.0" || !strings.EqualFold(got.EventID.String(), str(ce.ID)) ||
		got.EventType != str(ce.Type) || got.Source != str(ce.Source) || got.AggregateID != str(ce.Subject) ||
		got.CorrelationID != str(ce.CorrelationID) || got.CausationID != str(ce.CausationID) ||
		!bytes.Equal(got.Data, data) {
		t.Fatalf("%+v on CloudEvent %q: %+v, want %+v", d, trim(in), got, ce)
	}
	out, err := got.MarshalCloudEvent()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(out)
	if err != nil || !back.Equal(got) {
		t.Fatalf("CloudEvent round trip: %v\n%+v\n%+v", err, back, got)
	}
}

// refMember is one member of a JSON object: its key unescaped, its value
// verbatim.
type refMember struct {
	Key   string
	Value string
}

// refMembers lists the members of the JSON object obj in order, with
// encoding/json's tokenizer rather than the package's own code.
func refMembers(obj []byte) ([]refMember, bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	ms := []refMember{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		ms = append(ms, refMember{tok.(string), string(bytes.TrimSpace(raw))})
	}
	return ms, true
}

// refFlatMembers returns the members the flat-shape rule makes the data of
// the valid envelope in: nil when in has a data object (the nested shape),
// else every member whose key is no envelope field, possibly none.
func refFlatMembers(in []byte) ([]refMember, bool) {
	all, ok := refMembers(in)
	if !ok {
		return nil, false
	}
	extra := []refMember{}
	for _, m := range all {
		if m.Key == "data" && m.Value != "null" {
			return nil, true
		}
		if _, known := refFieldIndex[m.Key]; !known {
			extra = append(extra, m)
		}
	}
	if len(extra) == 0 {
		return nil, true // data is {} in both shapes
	}
	return extra, true
}

// within reports whether sub's first byte lies inside b's backing array
// (between b[0] and b[cap(b)-1]).
func within(b, sub []byte) bool {
	if len(sub) == 0 {
		return false
	}
	b = b[:cap(b)]
	for i := range b {
		if &b[i] == &sub[0] {
			return true
		}
	}
	return false
}

func trim(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

// mutate returns a copy of in with one random edit: a byte deleted,
// replaced or inserted, a span duplicated, or a cut.
func mutate(r *rand.Rand, in []byte) []byte {
	const interesting = "\"\\{}[]:,0123456789-+.eEtfnu \t\n\r\x00\x1f\x7f\xc3\xa9\xff/abz_"
	out := bytes.Clone(in)
	if len(out) == 0 {
		return []byte{interesting[r.IntN(len(interesting))]}
	}
	i := r.IntN(len(out))
	switch r.IntN(6) {
	case 0:
		return append(out[:i], out[i+1:]...)
	case 1:
		out[i] = interesting[r.IntN(len(interesting))]
		return out
	case 2:
		return append(out[:i], append([]byte{interesting[r.IntN(len(interesting))]}, in[i:]...)...)
	case 3:
		j := i + r.IntN(min(len(out)-i, 40)+1)
		return append(out[:j], append(bytes.Clone(in[i:j]), in[j:]...)...)
	case 4:
		return out[:i]
	default:
		j := r.IntN(len(out))
		out[i], out[j] = out[j], out[i]
		return out
	}
}

// diffInputs are inputs beyond decodeCases that the differential tests and
// the fuzz target start from: tricky JSON, limits exactly met and missed,
// and envelopes that differ from the base in one detail.
func diffInputs() []string {
	ins := []string{
		doc(map[string]string{"data": `{"a":{}}`}),
		doc(map[string]string{"data": `{"a":{"b":[]}}`}),
		doc(map[string]string{"data": `{"a":` + nested(9998, "[", "]") + `}`}),
		doc(map[string]string{"data": `{"a":` + nested(9999, "[", "]") + `}`}),
		doc(map[string]string{"eventType": `"identity.user.created"`, "event_type": `"identity.user.created"`}),
		doc(map[string]string{"event\\u005ftype": `"identity.user.created"`}),
		doc(map[string]string{"event\\\\u005ftype": `"x"`}),
		doc(map[string]string{"eventId": `"` + testID + `"`, "event_id": `5`}),
		doc(map[string]string{"eventId": `"abc"`, "event_id": `5`}),
		doc(map[string]string{"eventId": `5`, "event_id": `"abc"`}),
		doc(map[string]string{"aggregateId": `"\u00e9\ud800"`, "aggregate_id": `"é\ufffd"`}),
		doc(map[string]string{"aggregateId": "\"\xff\xfe\"", "aggregate_id": `"\ufffd\ufffd"`}),
		doc(map[string]string{"aggregateId": `"a\/b"`}),
		doc(map[string]string{"source": `"a-9"`, "dataVersion": `"1.0"`, "data_version": `null`}),
		doc(map[string]string{"source": `"a-9"`, "metadata": `null`, "data": `{}`, "x": `[1,-0.5e+7,true,false,null,"\t"]`}),
		doc(map[string]string{"occurredAt": `"2026-11-26T10:00:00.123456+00:00"`, "occurred_at": `"2026-11-26T10:00:00.123456Z"`}),
		doc(map[string]string{"correlationId": `""`, "correlation_id": `null`}),
		doc(map[string]string{"data": `{"a":"\u0000"}`, "metadata": `{"b":1E400}`}),
		doc(map[string]string{"data": `{}`, "metadata": `{}`}) + " \t\r\n",
		`{"eventId":"` + testID + `","eventType":"a.b.c","aggregateId":"x","occurredAt":"2026-01-01T00:00:00Z","source":"s"}`,
		`{"eventId":"` + testID + `","eventId":5}`,
		`{"data":[],"data":{}}`,
		`{"a":1}x`, `{"a":1} {}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":.5}`, `{"a":+1}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"\t\"}", "{\"a\":\"\xff\"}",
		`{"a":tru}`, `{"a":nul}`, `{"a":truex}`, `{"a" 1}`, `{"a":1,}`, `{,}`, `{"a":[1,]}`, `{"a":[,1]}`,
		`{"a":1`, `{"a":"`, `{"a":"\`, `{"a":"\u`, `{`, `}`, `{}}`, `{}]`, `{]`, `[}`, `{"a":[}`,
		`{"a":{"b":1}}`, `{"a":[[[]]]}`, `{"a":[[[[]]]]}`, "\xef\xbb\xbf{}", "{}\x00",
		``, ` `, `0`, `-0`, `1e5`, `"s"`, `true`, `null`, `[]`, `[1, 2]`, `[1,]`,
		nested(10000, "[", "]"), nested(10001, "[", "]"), strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65),
		`{"a":1]}`, `{"a":[1}]}`, `]]]]{}`,
		// The flat shape (no data object), and both shapes at once.
		doc(map[string]string{"data": del, "userId": `42`, "email": `"a@b"`}),
		doc(map[string]string{"data": `null`, "userId": `42`, "roles": `["a", "b"]`}),
		doc(map[string]string{"data": `{"a":1}`, "userId": `42`}),
		doc(map[string]string{"data": del, "correlationId": `null`, "causationId": `null`, "x\\u0079": `{"z":[]}`}),
		doc(map[string]string{"data": del, "userId": "\"\xff\""}),
		doc(map[string]string{"data": del, "userId": `"\u00e9 é"`, "event_type": `"identity.user.created"`}),
		// CloudEvents 1.0 structured mode.
		`{"specversion":"1.0","id":"` + testID + `","source":"identity-service","type":"identity.user.created","subject":"user-42","time":"2026-11-26T10:00:00.123456Z","datacontenttype":"application/json","correlationid":"c-1","metadata":"{\"tenant\":\"t1\"}","data":{"userId":42}}`,
		`{"specversion":"1.0","id":"` + testID + `","source":"identity-service","type":"identity.user.created","subject":"user-42","time":"2026-11-26T11:00:00+01:00"}`,
		`{"specversion":"0.3","id":"` + testID + `","source":"s","type":"a.b.c","subject":"x","time":"2026-11-26T10:00:00Z"}`,
		`{"specversion":"1.0","id":"` + testID + `","source":"s","type":"a.b.c","subject":"x","time":"2026-11-26T10:00:00Z","data_base64":"AA=="}`,
		`{"specversion":"1.0","id":"` + testID + `","source":"s","type":"a.b.c","subject":"x","time":"2026-11-26T10:00:00Z","datacontenttype":"text/xml","data":{}}`,
		`{"specversion":"1.0","id":"` + testID + `","id":"` + testID + `","source":"s","type":"a.b.c","subject":"x","time":"2026-11-26T10:00:00Z"}`,
	}
	for _, name := range []string{"user_created.flat.json", "user_created.flat-dumps.json", "user_created_correlated.flat-offset.json"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "python", name)); err == nil {
			ins = append(ins, string(b))
		}
	}
	return ins
}

// TestDecodeDifferential pins that Decode accepts and rejects exactly what
// the decoder before the single-pass scanner did, with the same errors:
// every decodeCases input and many random mutations of each, under several
// limits and with and without Alias.
func TestDecodeDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var inputs []string
	for _, tc := range decodeCases {
		inputs = append(inputs, tc.in)
	}
	inputs = append(inputs, diffInputs()...)
	inputs = append(inputs, string(envelope1KiB(t)))
	n := 0
	for _, in := range inputs {
		for _, d := range diffDecoders {
			checkSameAsReference(t, d, []byte(in))
			n++
		}
		if len(in) > 4096 {
			continue
		}
		m := []byte(in)
		for range 150 {
			if r.IntN(4) == 0 {
				m = []byte(in) // start over rather than drift ever further
			}
			m = mutate(r, m)
			for _, d := range diffDecoders {
				checkSameAsReference(t, d, m)
				n++
			}
		}
	}
	t.Logf("%d decodes compared", n)
}

// FuzzDecodeDifferential is the randomised form of TestDecodeDifferential,
// and also checks the scanner alone against json.Valid.
func FuzzDecodeDifferential(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.in) <= 8<<10 {
			f.Add([]byte(tc.in))
		}
	}
	for _, in := range diffInputs() {
		if len(in) <= 8<<10 {
			f.Add([]byte(in))
		}
	}
	f.Add(envelope1KiB(f))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkScanner(t, in)
		for _, d := range diffDecoders {
			checkSameAsReference(t, d, in)
		}
	})
}

// scanValid reports whether the scanner accepts b as one JSON value with
// nothing but whitespace around it.
func scanValid(b []byte, limit int) bool {
	s := scanner{b: b, limit: limit}
	i := s.value(skipSpace(b, 0), 0)
	return i >= 0 && skipSpace(b, i) == len(b)
}

// checkScanner fails unless the scanner agrees with json.Valid on b, at
// encoding/json's own depth limit, the default and a small one, and
// rawFields.scan agrees with the scanner on objects.
func checkScanner(t *testing.T, b []byte) {
	t.Helper()
	valid := json.Valid(b)
	for _, limit := range []int{jsonMaxDepth, DefaultMaxDepth, 3} {
		want := valid && !tooDeep(b, limit) // tooDeep is exact on valid JSON
		if got := scanValid(b, limit); got != want {
			t.Fatalf("scanner with limit %d on %q: %v, want %v", limit, trim(b), got, want)
		}
		if i := skipSpace(b, 0); i < len(b) && b[i] == '{' {
			var r rawFields
			if _, ok := r.scan(b, i, limit); ok != (want && utf8.Valid(b)) {
				t.Fatalf("rawFields.scan with limit %d on %q: %v, want %v", limit, trim(b), ok, want)
			}
		}
	}
}

// TestScannerMatchesJSONValid pins the scanner's grammar to json.Valid's on
// the corners where hand-written JSON scanners usually differ.
func TestScannerMatchesJSONValid(t *testing.T) {
	cases := []string{
		// Literals and numbers.
		`true`, `false`, `null`, `tru`, `nulll`, `True`, `0`, `-0`, `00`, `01`, `-01`, `-`, `--1`, `+1`,
		`1.`, `1.5`, `.5`, `1.e5`, `1e`, `1e+`, `1e-5`, `1E+05`, `1e5.0`, `0x1F`, `1_000`, `Infinity`, `NaN`,
		`123456789012345678901234567890`, `-0.0e-0`, `1 2`, `[1e5,0,-0.5]`, `[-]`, `[01]`, `[1.]`,
		// Strings.
		`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\a"`, `"\x41"`, `"\'"`, `"\u0041"`, `"\u004"`,
		`"\u004g"`, `"\U0041"`, `"\ud800"`, `"\udc00\ud800"`, `"\u00e9"`, `"é"`, "\"\xff\"", "\"\xc3\"",
		"\"\xed\xa0\x80\"", "\"\x00\"", "\"\x1f\"", "\"\x7f\"", "\"\t\"", "\"\n\"", `"unterminated`, `"\`,
		`"\"`, `"a\\"`, `"a\\\"`, `"0123456\"89abcdef"`, "\"0123456\x0189abcdef\"", `"01234567\\"`,
		"\"" + strings.Repeat("x", 1000) + "\"", "\"" + strings.Repeat("x", 1000) + "\x1f\"",
		"\"" + strings.Repeat("é", 100) + "\\u12\"",
		// Structure.
		`{}`, `[]`, `{ }`, `[ ]`, `{"a":1}`, `{"a" : 1 , "b" : [ 1 , 2 ] }`, `{"a":1,}`, `{,}`, `{"a"}`,
		`{"a":}`, `{:1}`, `{1:1}`, `{'a':1}`, `{"a":1 "b":2}`, `[1,]`, `[,1]`, `[1 2]`, `[1,,2]`, `{"a":[}`,
		`{"a":{]}`, `[{]}`, `{"a":1}}`, `[]]`, `[[]`, `{"a":{"b":{"c":[]}}}`,
		// Whitespace and surroundings.
		``, ` `, " \t\r\n", "\f{}", "\v{}", "\u00a0{}", "{}\u00a0", " {} ", "{}\n", "{} {}", "{}x", "{}\x00",
		"\xef\xbb\xbf{}", "{\"a\":\x0b1}",
		// Depth around both limits.
		nested(3, "[", "]"), nested(4, "[", "]"), nested(DefaultMaxDepth, "[", "]"), nested(DefaultMaxDepth+1, "[", "]"), `{"a":{"b":[]}}`, `{"a":{"b":[1]}}`, `[{"a":[{}]}]`,
		nested(jsonMaxDepth, "[", "]"), nested(jsonMaxDepth+1, "[", "]"),
		strings.Repeat(`{"a":`, jsonMaxDepth) + "1" + strings.Repeat("}", jsonMaxDepth),
		strings.Repeat(`{"a":`, jsonMaxDepth+1) + "1" + strings.Repeat("}", jsonMaxDepth+1),
	}
	for _, in := range cases {
		checkScanner(t, []byte(in))
		if i := skipSpace([]byte(in), 0); i < len(in) && in[i] == '{' {
			for _, d := range diffDecoders {
				checkSameAsReference(t, d, []byte(in))
			}
		}
	}
	// Every byte value at every offset of a string long enough for the
	// eight-byte loop, alone and after an escape.
	for c := range 256 {
		for pos := range 20 {
			for _, prefix := range []string{`"`, `"\n`, `"\u00e9`} {
				in := []byte(prefix + strings.Repeat("x", 20) + `"`)
				in[len(prefix)+pos] = byte(c)
				checkScanner(t, in)
			}
		}
	}
	// Every string of up to three bytes from a JSON-heavy alphabet.
	const alphabet = "{}[]\":,0 1-e.\\tu"
	var walk func(prefix []byte)
	walk = func(prefix []byte) {
		checkScanner(t, prefix)
		if len(prefix) == 3 {
			return
		}
		for i := range len(alphabet) {
			walk(append(prefix, alphabet[i]))
		}
	}
	walk(nil)
}

// TestFieldOf pins the key switch to fieldNames: every spelling maps to its
// field, near misses do not, and escaped spellings are resolved once.
func TestFieldOf(t *testing.T) {
	for f, names := range fieldNames {
		for sp, name := range names {
			if name == "" {
				continue
			}
			if k, ok := fieldOf([]byte(name)); !ok || k != (fieldKey{f, sp}) {
				t.Errorf("fieldOf(%q) = %v %v, want %v", name, k, ok, fieldKey{f, sp})
			}
			for _, miss := range []string{name + " ", strings.ToUpper(name), name[1:], name[:len(name)-1]} {
				if _, ok := fieldOf([]byte(miss)); ok {
					t.Errorf("fieldOf(%q) matched", miss)
				}
			}
		}
	}
	for key, want := range map[string]bool{
		`"event\u005fid"`: true, `"\u0064ata"`: true, `"event\\u005fid"`: false, `"event_id\u0000"`: false, `"EventId"`: false,
	} {
		if _, ok := keyOf([]byte(key)); ok != want {
			t.Errorf("keyOf(%s) = %v, want %v", key, ok, want)
		}
	}
}

// TestDecodeAlias pins the Alias contract: data and metadata are the bytes
// of the input, changing the input changes them, absent ones are a fresh {},
// and appending to them leaves the input alone.
func TestDecodeAlias(t *testing.T) {
	in := []byte(doc(nil))
	e, err := Decoder{Alias: true}.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	wantBase(t, e)
	i := bytes.Index(in, []byte(`"Ada"`))
	in[i+1] = 'I'
	if !bytes.Contains(e.Data, []byte(`"Ida"`)) {
		t.Errorf("data %s does not alias the input", e.Data)
	}
	before := bytes.Clone(in)
	_ = append(e.Metadata, "xxxxxxxx"...)
	if !bytes.Equal(in, before) {
		t.Errorf("appending to metadata wrote into the input")
	}

	in = []byte(doc(map[string]string{"data": del, "metadata": "null"}))
	e, err = Decoder{Alias: true}.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Data) != "{}" || string(e.Metadata) != "{}" || within(in, e.Data) || within(in, e.Metadata) {
		t.Errorf("absent data %q and null metadata %q are not a fresh {}", e.Data, e.Metadata)
	}
}

// TestPatternMatchers pins matchEventType and matchSource to the regexps of
// EventTypePattern and SourcePattern: on edge cases, on every string of up
// to six bytes over an alphabet with one member of each class of byte the
// patterns tell apart (longer strings only repeat what those show), and on
// random strings.
func TestPatternMatchers(t *testing.T) {
	check := func(s string) {
		t.Helper()
		if got, want := matchEventType(s), refEventTypeRE.MatchString(s); got != want {
			t.Fatalf("matchEventType(%q) = %v, regexp says %v", s, got, want)
		}
		if got, want := matchSource(s), refSourceRE.MatchString(s); got != want {
			t.Fatalf("matchSource(%q) = %v, regexp says %v", s, got, want)
		}
	}
	for _, s := range []string{
		"", "a", "a.b.c", "a.b.c.", ".a.b.c", "a..c", "a.b.", "a.-.-", "a-.b.c", "-a.b.c", "a.b-c.d-",
		"identity.user.created", "identity.user.created.extra", "identity.user", "identity.user.created\n",
		"\nidentity.user.created", "Identity.user.created", "identity.user_x.created", "a.b.c ", "a.b.\u00e9",
		"a.b.c\x00", "a.b.c\xff", "z.z.z", "a.b.C", "a9.b.c", "a.b9.c", "x", "svc", "svc-1", "svc_1", "9svc",
		"-svc", "s-", "s--", "s0", "Svc", "svc\n", "sv c", "é", "a\xff", strings.Repeat("a", 1000),
		"{", "`", "@", "[", "/", ":", "0",
	} {
		check(s)
	}
	const alphabet = "az09.-A_\n"
	var walk func(prefix []byte)
	walk = func(prefix []byte) {
		check(string(prefix))
		if len(prefix) == 6 {
			return
		}
		for i := range len(alphabet) {
			walk(append(prefix, alphabet[i]))
		}
	}
	walk(nil)
	r := rand.New(rand.NewPCG(3, 4))
	const chars = "abcxyz-.09_A\x00\xff"
	for range 20000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = chars[r.IntN(len(chars))]
		}
		check(string(b))
	}
}
