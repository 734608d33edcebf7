package catalog_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
)

var valueSeeds = []string{
	`{}`, `[]`, `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, ` { "a" : -0.5e+3 } `,
	`{"s":"a\"b\\c\/d\u00e9\n\t"}`, `{"u":"\ud83d\ude00 ok"}`, `"x"`, `12345678901234567890`,
	`{"a":1,"a":2}`, `{"k":"é漢字"}`, benchOrder,
	// refused by parseValue (the caller then asks the library):
	`{`, `[1,]`, `{"a":1,}`, `01`, `1.`, `-`, `1e`, `"\x"`, "\"a\x01\"", `{"a" 1}`, `{} x`, `tru`, `nul`, "\"\xff\"", ``,
}

// parseValue is the bridge's fast decoder of data for validation: whatever
// it accepts, it decodes exactly as the JSON Schema library's own decoder.
func TestParseValueMatchesLibrary(t *testing.T) {
	for _, s := range valueSeeds {
		checkParse(t, []byte(s))
	}
}

func FuzzParseValue(f *testing.F) {
	for _, s := range valueSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkParse)
}

func checkParse(t *testing.T, b []byte) {
	got, err := catalog.ParseValueForTest(b)
	if err != nil {
		return // the caller falls back to the library
	}
	want, werr := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if werr != nil {
		t.Fatalf("%q: parseValue accepted what the library refuses (%v)", b, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: parseValue = %#v, library = %#v", b, got, want)
	}
}
