package catalog_test

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// The generated document of the fixture catalog, checked in as
// testdata/shop.md (go test -run TestMarkdown -update rewrites it).
func TestMarkdownGolden(t *testing.T) {
	c := load(t, "testdata/shop", false)
	var got bytes.Buffer
	if err := catalog.WriteMarkdown(&got, c); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/shop.md"
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("document differs from %s (rerun with -update and review the diff):\n%s", golden, got.String())
	}
}
