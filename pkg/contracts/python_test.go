package contracts

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// pyUserCreated is the Go side of the Python fixtures' UserCreated event
// (testdata/python/gen.py), its fields in the Python class's order.
type pyUserCreated struct {
	UserID      int      `json:"userId"`
	Email       string   `json:"email"`
	DisplayName string   `json:"displayName"`
	Roles       []string `json:"roles"`
}

var pyUserCreatedEvent = Define[pyUserCreated]("identity.user.created")

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "python", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pyFixtures are the flat envelopes the Python messagekit writes, with the
// envelope and business fields each must decode to.
var pyFixtures = []struct {
	name       string
	id         string
	aggregate  string
	occurred   time.Time
	version    string
	corr, caus string
	meta       string
	data       pyUserCreated
	dataJSON   string
}{
	{
		name: "user_created", id: "0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a", aggregate: "user-42",
		occurred: time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.UTC), version: "1.0", meta: `{}`,
		data:     pyUserCreated{42, "ada@example.com", "Ada Lovelace é", []string{"admin", "author"}},
		dataJSON: `{"userId":42,"email":"ada@example.com","displayName":"Ada Lovelace é","roles":["admin","author"]}`,
	},
	{
		name: "user_created_correlated", id: "0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8b", aggregate: "user-43",
		occurred: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), version: "2.1",
		corr: "0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8c", caus: "0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8d",
		meta:     `{"tenant":"t1"}`,
		data:     pyUserCreated{43, "grace@example.com", "Grace", []string{}},
		dataJSON: `{"userId":43,"email":"grace@example.com","displayName":"Grace","roles":[]}`,
	},
}

// TestDecodePythonFlat pins that every form in which the Python messagekit
// writes an event (compact, json.dumps with spaces, +00:00 offsets; null
// correlation and causation ids) decodes to the same envelope, and that a
// typed handler gets every business field.
func TestDecodePythonFlat(t *testing.T) {
	for _, fx := range pyFixtures {
		for _, form := range []string{"flat", "flat-dumps", "flat-offset"} {
			t.Run(fx.name+"/"+form, func(t *testing.T) {
				in := readFixture(t, fx.name+"."+form+".json")
				for _, d := range []Decoder{{}, {Alias: true}} {
					e, err := d.Decode(in)
					if err != nil {
						t.Fatal(err)
					}
					if e.EventID != uuid.MustParse(fx.id) || e.EventType != "identity.user.created" ||
						e.AggregateID != fx.aggregate || !e.OccurredAt.Equal(fx.occurred) ||
						e.Source != "identity-service" || e.DataVersion != fx.version ||
						e.CorrelationID != fx.corr || e.CausationID != fx.caus {
						t.Errorf("envelope %+v", e)
					}
					if got := compact(t, e.Metadata); got != fx.meta {
						t.Errorf("metadata %s, want %s", got, fx.meta)
					}
					if !sameJSON(t, e.Data, []byte(fx.dataJSON)) {
						t.Errorf("data %s, want %s", e.Data, fx.dataJSON)
					}
					v, err := pyUserCreatedEvent.Decode(e)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(v, fx.data) {
						t.Errorf("typed data %+v, want %+v", v, fx.data)
					}
				}
			})
		}
	}
}

// sameJSON reports whether the objects a and b have the same members in the
// same order, values equal as decoded JSON (escapes and spacing aside).
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	ma, oka := refMembers(a)
	mb, okb := refMembers(b)
	if !oka || !okb || len(ma) != len(mb) {
		return false
	}
	for i := range ma {
		var va, vb any
		if ma[i].Key != mb[i].Key || json.Unmarshal([]byte(ma[i].Value), &va) != nil ||
			json.Unmarshal([]byte(mb[i].Value), &vb) != nil || !reflect.DeepEqual(va, vb) {
			return false
		}
	}
	return true
}

func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return b.String()
}

// TestDecodeShapeRule pins the rule for telling the shapes apart: a data
// object wins and other unknown members are ignored (the nested shape, as
// before the flat shape was accepted); absent or null data makes the
// non-envelope members the data, in order and verbatim, snake_case envelope
// keys and escaped spellings included among the envelope fields.
func TestDecodeShapeRule(t *testing.T) {
	cases := []struct {
		name string
		mods map[string]string
		data string
	}{
		{"nested with extra members", map[string]string{"userId": `42`, "x": `[1]`}, `{"name":"Ada","age":36}`},
		{"flat", map[string]string{"data": del, "userId": `42`, "x": `[1, 2]`}, `{"userId":42,"x":[1, 2]}`},
		{"flat with null data", map[string]string{"data": `null`, "userId": `42`}, `{"userId":42}`},
		{"absent data, no extra members", map[string]string{"data": del}, `{}`},
		{"empty data object wins", map[string]string{"data": `{}`, "userId": `42`}, `{}`},
		{"snake_case envelope keys are not data", map[string]string{"data": del, "correlationId": del, "correlation_id": `null`, "event_type": `"identity.user.created"`, "v": `1`}, `{"v":1}`},
		{"escaped keys kept verbatim", map[string]string{"data": del, "event\\u005fid": `"` + testID + `"`, "a\\u0062": `"\u00e9"`}, `{"a\u0062":"\u00e9"}`},
		{"duplicated data members kept", map[string]string{"data": del, "z": `1`, "y": `{"z":2}`}, `{"y":{"z":2},"z":1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Decode([]byte(doc(tc.mods)))
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Data) != tc.data {
				t.Errorf("data %s, want %s", e.Data, tc.data)
			}
			if cap(e.Data) != len(e.Data) {
				t.Errorf("data has spare capacity")
			}
		})
	}
	// Null correlation and causation ids, as Python writes None.
	e, err := Decode([]byte(doc(map[string]string{"correlationId": `null`, "causationId": `null`})))
	if err != nil || e.CorrelationID != "" || e.CausationID != "" {
		t.Errorf("null ids: %+v %v", e, err)
	}
}

// TestDecodeInvalidUTF8 pins strict JSON on input: invalid UTF-8 inside any
// string is a DecodeError (stage DECODE) naming the offset of the first bad
// byte, wherever it is; before, it was accepted, and the bridge forwarded the
// raw bytes while its x-aggregate-id header got U+FFFD.
func TestDecodeInvalidUTF8(t *testing.T) {
	for _, tc := range []struct {
		mods map[string]string
		bad  string
	}{
		{map[string]string{"aggregateId": "\"user-\xff\""}, "\xff"},
		{map[string]string{"eventType": "\"identity.user.\xc3\""}, "\xc3\""},
		{map[string]string{"data": "{\"name\":\"Ad\xe9a\"}"}, "\xe9a"},
		{map[string]string{"data": del, "name": "\"0123456789\xed\xa0\x80\""}, "\xed\xa0\x80"}, // a surrogate half
		{map[string]string{"metadata": "{\"k\xfe\":1}"}, "\xfe"},
		{map[string]string{"x\x80": "1"}, "\x80"},
	} {
		in := []byte(doc(tc.mods))
		_, err := Decode(in)
		want := "decode envelope: invalid UTF-8 at byte offset " + itoa(bytes.Index(in, []byte(tc.bad)))
		if err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", in, err, want)
			continue
		}
		if st, _ := StageOf(err); st != StageDecode {
			t.Errorf("stage %q", st)
		}
	}
	// Valid multi-byte UTF-8, across the scanner's eight-byte steps.
	for pad := range 9 {
		in := doc(map[string]string{"aggregateId": `"` + strings.Repeat("x", pad) + `é€𝄞"`})
		if _, err := Decode([]byte(in)); err != nil {
			t.Errorf("pad %d: %v", pad, err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
