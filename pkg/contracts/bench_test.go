package contracts

import (
	"fmt"
	"strings"
	"testing"
)

func BenchmarkDecode(b *testing.B) {
	in := []byte(doc(nil))
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Decode(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	e, err := Decode([]byte(doc(nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

// envelope1KiB returns an envelope of exactly 1024 bytes shaped like the
// records of the bridge's load tool: a sequence number and padding as data,
// and a correlation id.
func envelope1KiB(tb testing.TB) []byte {
	tb.Helper()
	pad := 0
	for range 3 {
		env, err := New("load.item.recorded", "agg-0001", "load-tool",
			map[string]any{"seq": 1, "pad": strings.Repeat("x", pad)},
			WithCorrelationID(fmt.Sprintf("corr-%010d", 1)))
		if err != nil {
			tb.Fatal(err)
		}
		b, err := env.MarshalJSON()
		if err != nil {
			tb.Fatal(err)
		}
		if len(b) == 1024 {
			return b
		}
		pad += 1024 - len(b)
	}
	tb.Fatal("cannot size an envelope to 1024 bytes")
	return nil
}

// benchDecoders runs Decode on in with the zero Decoder, with Alias, and
// the decoder before the single-pass scanner, so one run shows the ratio.
func benchDecoders(b *testing.B, in []byte) {
	for _, bc := range []struct {
		name   string
		decode func([]byte) (Envelope, error)
	}{
		{"zero", Decoder{}.Decode},
		{"alias", Decoder{Alias: true}.Decode},
		{"reference", func(in []byte) (Envelope, error) { return referenceDecode(Decoder{}, in) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := bc.decode(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode1KiB decodes a 1 KiB envelope like the load tool's, the
// bridge's benchmark record.
func BenchmarkDecode1KiB(b *testing.B) { benchDecoders(b, envelope1KiB(b)) }

// BenchmarkDecodeDoc decodes the test's base envelope, with all fields and
// small data.
func BenchmarkDecodeDoc(b *testing.B) { benchDecoders(b, []byte(doc(nil))) }
