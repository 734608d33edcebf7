package mkctl_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstunicorn/messagekit-go/internal/mkctl"
	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog/catalogtest"
)

const shop = "../../pkg/contracts/catalog/testdata/shop"

func run(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := mkctl.Run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// copyCatalog writes the shop fixture to a new directory, with edit applied
// to the files first.
func copyCatalog(t *testing.T, edit func(files map[string]string)) string {
	t.Helper()
	files := catalogtest.Files(t, shop)
	if edit != nil {
		edit(files)
	}
	dir := t.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// check passes an additive change and fails, listing it, a breaking one;
// it compares directories and revisions of a git repository alike.
func TestCatalogCheck(t *testing.T) {
	additive := copyCatalog(t, func(f map[string]string) {
		f["events.toml"] += "\n[events.\"orders.order.shipped\"]\nowner_service = \"order-service\"\n"
	})
	if code, out, errOut := run("catalog", "check", shop, additive); code != mkctl.ExitOK || !strings.Contains(out, "event type added") {
		t.Fatalf("additive: exit %d\n%s%s", code, out, errOut)
	}
	breaking := copyCatalog(t, func(f map[string]string) {
		f["schemas/identity.user.registered.v1.schema.json"] = strings.Replace(f["schemas/identity.user.registered.v1.schema.json"], `"type": "integer"`, `"type": "string"`, 1)
	})
	code, out, _ := run("catalog", "check", shop, breaking)
	if code != mkctl.ExitFailed || !strings.Contains(out, "BREAKING identity.user.registered 1.0 userId: type changed (integer → string)") {
		t.Fatalf("breaking: exit %d\n%s", code, out)
	}

	bare := t.TempDir()
	repo := catalogtest.NewBareRepo(t, bare, "main")
	first := repo.Commit(t, catalogtest.Files(t, shop), "catalog")
	files := catalogtest.Files(t, shop)
	files["events.toml"] = strings.Replace(files["events.toml"], `[events."gamification.xp.awarded"]`, `[events."gamification.xp.granted"]`, 1)
	repo.Commit(t, files, "rename")
	code, out, errOut := run("catalog", "check", "-repo", bare, first, "main")
	if code != mkctl.ExitFailed || !strings.Contains(out, "BREAKING gamification.xp.awarded: event type removed") {
		t.Fatalf("git revisions: exit %d\n%s%s", code, out, errOut)
	}

	if code, _, errOut := run("catalog", "check", shop, "no-such-thing"); code != mkctl.ExitUsage || !strings.Contains(errOut, "no-such-thing") {
		t.Fatalf("unreadable catalog: exit %d %s", code, errOut)
	}
	if code, _, _ := run("catalog", "check", shop); code != mkctl.ExitUsage {
		t.Fatalf("one argument: exit %d", code)
	}
}

// doc writes the document checked in as the fixture's golden file, and
// -check fails when a file is out of date.
func TestCatalogDoc(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(shop, "..", "shop.md"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run("catalog", "doc", shop)
	if code != mkctl.ExitOK || out != string(want) {
		t.Fatalf("exit %d, output differs from the golden file\n%s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "catalog.md")
	if code, _, _ := run("catalog", "doc", "-o", file, "-check", shop); code != mkctl.ExitFailed {
		t.Fatalf("-check of a missing file: exit %d", code)
	}
	if code, _, _ := run("catalog", "doc", "-o", file, shop); code != mkctl.ExitOK {
		t.Fatalf("-o: exit %d", code)
	}
	if code, _, errOut := run("catalog", "doc", "-o", file, "-check", shop); code != mkctl.ExitOK {
		t.Fatalf("-check of a fresh file: exit %d %s", code, errOut)
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := run(); code != mkctl.ExitUsage || !strings.Contains(errOut, "catalog check") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if code, _, _ := run("nope", "x"); code != mkctl.ExitUsage {
		t.Fatalf("unknown command: exit %d", code)
	}
}
