package deadletter_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// TestCleanText pins what the text columns accept: valid UTF-8 without
// NUL, cut at a rune boundary with a mark.
func TestCleanText(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"orders.q", 0, "orders.q"},
		{"a\x00b", 0, "a\uFFFDb"},
		{"a\xffb", 0, "a\uFFFDb"},
		{"abcdef", 5, "ab…"},
		{"ab€€", 6, "ab…"}, // "€" is 3 bytes: no half rune before the mark
		{"abcdef", 2, "ab"},
		{"abc", 3, "abc"},
	}
	for _, tc := range tests {
		got := deadletter.CleanText(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("CleanText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
		if !utf8.ValidString(got) || (tc.max > 0 && len(got) > tc.max) {
			t.Errorf("CleanText(%q, %d) = %q: invalid or too long", tc.in, tc.max, got)
		}
	}
}

// TestKafkaHeadersRoundTrip pins that the headers column keeps Kafka
// headers exactly: order, repeats, binary keys and values, null values.
func TestKafkaHeadersRoundTrip(t *testing.T) {
	in := []deadletter.KafkaHeader{
		{Key: []byte("id"), Value: []byte("9b2c1f6e-6a43-4a8e-9d5e-0f1d2c3b4a59")},
		{Key: []byte("bin"), Value: []byte{0, 0xff, 1}},
		{Key: []byte("null"), Value: nil},
		{Key: []byte("empty"), Value: []byte{}},
		{Key: []byte("id"), Value: []byte("again")},
		{Key: []byte("\xffkey"), Value: []byte("v")},
	}
	raw := deadletter.EncodeKafkaHeaders(in)
	if !json.Valid(raw) || bytes.Contains(raw, []byte(`\u0000`)) {
		t.Fatalf("encoded %s: not JSON jsonb takes", raw)
	}
	if !strings.HasPrefix(string(raw), `{"headers":[{"key":"id","value":"9b2c`) {
		t.Errorf("encoded %s: want readable text headers", raw)
	}
	out, err := deadletter.DecodeKafkaHeaders(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d headers, want %d", len(out), len(in))
	}
	for i := range in {
		if !bytes.Equal(out[i].Key, in[i].Key) || !bytes.Equal(out[i].Value, in[i].Value) ||
			(out[i].Value == nil) != (in[i].Value == nil) {
			t.Errorf("header %d = %q:%q (nil %v), want %q:%q (nil %v)", i, out[i].Key, out[i].Value,
				out[i].Value == nil, in[i].Key, in[i].Value, in[i].Value == nil)
		}
	}
	for _, bad := range []string{`[]`, `{"headers":[{"value":"x"}]}`, `{"headers":[{"key":"a","value_base64":"!"}]}`} {
		if _, err := deadletter.DecodeKafkaHeaders(json.RawMessage(bad)); err == nil {
			t.Errorf("DecodeKafkaHeaders(%s) succeeded", bad)
		}
	}
}
