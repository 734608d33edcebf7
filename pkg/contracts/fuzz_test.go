package contracts

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode pins that Decode never panics, that every failure is exactly
// one of the two documented error kinds, and that whatever it accepts
// validates and survives Marshal → Decode unchanged (and Marshal is then a
// fixed point), which is what lets the bridge republish a decoded envelope.
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.in) <= 8<<10 {
			f.Add([]byte(tc.in))
		}
	}
	f.Add([]byte(doc(map[string]string{"data": `{"a":` + nested(70, "[", "]") + `}`})))
	f.Add([]byte(doc(map[string]string{"aggregateId": `"\ud800\u2028\"\\"`, "correlationId": `"\u0000"`})))
	f.Add([]byte(doc(map[string]string{"occurredAt": `"0001-01-01T00:30:00+01:00"`})))
	for _, in := range diffInputs() { // includes flat envelopes and the Python fixtures
		if len(in) <= 8<<10 {
			f.Add([]byte(in))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := Decode(in)
		if err != nil {
			var de *DecodeError
			var ve *ValidationError
			if errors.As(err, &de) == errors.As(err, &ve) {
				t.Fatalf("error %T %v is not exactly one of *DecodeError, *ValidationError", err, err)
			}
			if st, ok := StageOf(err); !ok || st == "" {
				t.Fatalf("no stage for %v", err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded envelope does not validate: %v", err)
		}
		out, err := e.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		e2, err := Decode(out)
		if err != nil {
			t.Fatalf("Decode(Marshal(e)): %v\ninput  %q\noutput %q", err, in, out)
		}
		if !e2.Equal(e) {
			t.Fatalf("round trip changed the envelope\nfirst  %+v\nsecond %+v", e, e2)
		}
		out2, err := e2.MarshalJSON()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("Marshal is not a fixed point: %v\n%q\n%q", err, out, out2)
		}
	})
}
