package contracts

import (
	"errors"
	"reflect"
	"testing"
)

// TestCloudEventsGolden pins the CloudEvents output of the Python fixtures'
// events byte for byte, and that Decode reads it back to the same envelope
// and typed data.
func TestCloudEventsGolden(t *testing.T) {
	want := []string{
		`{"specversion":"1.0","id":"0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a","source":"identity-service","type":"identity.user.created","subject":"user-42","time":"2026-11-26T10:00:00.123456Z","datacontenttype":"application/json","dataversion":"1.0","data":{"userId":42,"email":"ada@example.com","displayName":"Ada Lovelace é","roles":["admin","author"]}}`,
		`{"specversion":"1.0","id":"0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8b","source":"identity-service","type":"identity.user.created","subject":"user-43","time":"2026-11-26T10:00:00.000000Z","datacontenttype":"application/json","dataversion":"2.1","correlationid":"0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8c","causationid":"0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8d","metadata":"{\"tenant\":\"t1\"}","data":{"userId":43,"email":"grace@example.com","displayName":"Grace","roles":[]}}`,
	}
	for i, fx := range pyFixtures {
		e := pyEnvelope(t, i)
		got, err := e.MarshalShape(ShapeCloudEvents)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want[i] {
			t.Errorf("%s:\ngot  %s\nwant %s", fx.name, got, want[i])
		}
		for _, d := range []Decoder{{}, {Alias: true}} {
			back, err := d.Decode(got)
			if err != nil || !back.Equal(e) {
				t.Fatalf("%s: decoded %+v %v, want %+v", fx.name, back, err, e)
			}
			if v, err := pyUserCreatedEvent.Decode(back); err != nil || !reflect.DeepEqual(v, fx.data) {
				t.Errorf("%s: typed %+v %v", fx.name, v, err)
			}
		}
	}
}

// TestCloudEventsErrors pins that a CloudEvent Decode can not map is a
// ValidationError naming the attribute.
func TestCloudEventsErrors(t *testing.T) {
	base := map[string]string{
		"specversion": `"1.0"`, "id": `"` + testID + `"`, "source": `"identity-service"`,
		"type": `"identity.user.created"`, "subject": `"user-42"`, "time": `"2026-11-26T10:00:00Z"`,
	}
	for _, tc := range []struct {
		edit  map[string]string
		field string
	}{
		{map[string]string{"specversion": `"0.3"`}, "specversion"},
		{map[string]string{"id": `"A234-1234-1234"`}, "id"},
		{map[string]string{"id": ""}, "id"},
		{map[string]string{"time": ""}, "time"},
		{map[string]string{"time": `"2026-11-26T10:00:00"`}, "time"},
		{map[string]string{"subject": ""}, "subject"},
		{map[string]string{"source": `"/identity"`}, "source"},
		{map[string]string{"type": `"com.example.created.v1"`}, "eventType"},
		{map[string]string{"data_base64": `"AA=="`}, "data_base64"},
		{map[string]string{"datacontenttype": `"application/xml"`}, "datacontenttype"},
		{map[string]string{"data": `[1]`}, "data"},
		{map[string]string{"metadata": `"[1]"`}, "metadata"},
	} {
		in := "{"
		first := true
		for k, v := range base {
			if e, ok := tc.edit[k]; ok {
				v = e
			}
			if v == "" {
				continue
			}
			if !first {
				in += ","
			}
			first = false
			in += `"` + k + `":` + v
		}
		for k, v := range tc.edit {
			if _, ok := base[k]; !ok {
				in += `,"` + k + `":` + v
			}
		}
		in += "}"
		_, err := Decode([]byte(in))
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("%s: %v, want a ValidationError on %s", in, err, tc.field)
		}
	}
	if _, err := ParseShape("cloudevents"); err != nil {
		t.Error(err)
	}
}
