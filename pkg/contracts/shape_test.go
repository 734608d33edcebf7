package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/google/uuid"
)

// pyEnvelope builds fixture fx's event the way a Go producer would: typed
// data through Event.New.
func pyEnvelope(t *testing.T, i int) Envelope {
	t.Helper()
	fx := pyFixtures[i]
	opts := []Option{WithEventID(uuid.MustParse(fx.id)), WithOccurredAt(fx.occurred), WithDataVersion(fx.version)}
	if fx.corr != "" {
		opts = append(opts, WithCorrelationID(fx.corr), WithCausationID(fx.caus))
	}
	if fx.meta != "{}" {
		opts = append(opts, WithMetadata(json.RawMessage(fx.meta)))
	}
	e, err := pyUserCreatedEvent.New(fx.aggregate, "identity-service", fx.data, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestMarshalShapesGolden pins both shapes byte for byte: the flat one
// against what pydantic writes for the same event (model_dump_json by
// alias), the nested one against the fixture of this module's shape.
func TestMarshalShapesGolden(t *testing.T) {
	for i, fx := range pyFixtures {
		e := pyEnvelope(t, i)
		for _, tc := range []struct {
			shape Shape
			file  string
		}{{ShapeFlat, ".flat.json"}, {ShapeNested, ".nested.json"}} {
			got, err := e.MarshalShape(tc.shape)
			if err != nil {
				t.Fatal(err)
			}
			if want := readFixture(t, fx.name+tc.file); !bytes.Equal(got, want) {
				t.Errorf("%s %v:\ngot  %s\nwant %s", fx.name, tc.shape, got, want)
			}
			back, err := Decode(got)
			if err != nil || !back.Equal(e) && tc.shape == ShapeNested {
				t.Errorf("%v does not decode back: %v", tc.shape, err)
			}
			if v, err := pyUserCreatedEvent.Decode(back); err != nil || !reflect.DeepEqual(v, fx.data) {
				t.Errorf("%v decoded to %+v %v", tc.shape, v, err)
			}
		}
	}
}

// TestMarshalFlatRefuses pins what the flat shape can not carry.
func TestMarshalFlatRefuses(t *testing.T) {
	base := pyEnvelope(t, 0)
	for _, tc := range []struct {
		edit  func(*Envelope)
		field string
	}{
		{func(e *Envelope) { e.CorrelationID = "corr-1" }, "correlationId"},
		{func(e *Envelope) { e.CausationID = "x" }, "causationId"},
		{func(e *Envelope) { e.Data = json.RawMessage(`{"a":1,"data":{}}`) }, "data.data"},
		{func(e *Envelope) { e.Data = json.RawMessage(`{"event\u005fid":1}`) }, "data.event_id"},
		{func(e *Envelope) { e.Data = json.RawMessage(`{"metadata":1}`) }, "data.metadata"},
		{func(e *Envelope) { e.EventType = "bad" }, "eventType"},
	} {
		e := base
		tc.edit(&e)
		_, err := e.MarshalFlat()
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("want a ValidationError on %s, got %v", tc.field, err)
		}
	}
	e := base
	e.CorrelationID = "0192F0C1-5A3E-7C2D-9B1A-3F4E5D6C7B8C"
	out, err := e.MarshalFlat()
	if err != nil || !bytes.Contains(out, []byte(`"correlationId":"0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8c","causationId":null`)) {
		t.Errorf("%s %v", out, err)
	}
	if _, err := ParseShape("cloud"); err == nil {
		t.Error("ParseShape accepted an unknown name")
	}
	if _, err := e.MarshalShape(Shape(9)); err == nil {
		t.Error("MarshalShape accepted an unknown shape")
	}
}
