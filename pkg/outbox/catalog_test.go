package outbox_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// With an event catalog, Add refuses an unlisted type (strict) and data
// that breaks its schema, naming the field, and writes nothing; a listed
// event with valid data is written.
func TestWriterWithCatalog(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := testenv.MigratedPostgres(t)
	cat, err := catalog.Load(os.DirFS("../contracts/catalog/testdata/shop"), catalog.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	w := outbox.NewWriter(outbox.WriterConfig{Checker: cat})
	newEvent := func(eventType, data string) contracts.Envelope {
		e, err := contracts.New(eventType, "u-1", "identity-service", []byte(data))
		if err != nil {
			e, err = contracts.New(eventType, "u-1", "identity-service", nil)
			if err != nil {
				t.Fatal(err)
			}
			e.Data = []byte(data)
		}
		return e
	}
	good := newEvent("identity.user.registered", `{"userId":42,"email":"a@example.com"}`)
	for _, tc := range []struct {
		name  string
		bad   contracts.Envelope
		field string
	}{
		{"unlisted type", newEvent("identity.user.deleted", `{}`), "eventType"},
		{"schema violation", newEvent("identity.user.registered", `{"userId":"42","email":"a@example.com"}`), "data.userId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return w.Add(ctx, tx, good, tc.bad) })
			var v *catalog.Violation
			var ve *contracts.ValidationError
			if !errors.As(err, &v) || !errors.As(err, &ve) || ve.Field != tc.field || !strings.Contains(err.Error(), "event 2 of 2") {
				t.Fatalf("Add = %v, want a catalog violation of %s", err, tc.field)
			}
		})
	}
	if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events"); n != 0 {
		t.Fatalf("%d rows written by refused Adds", n)
	}
	if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return w.Add(ctx, tx, good) }); err != nil {
		t.Fatal(err)
	}
	if n := count(t, ctx, db.Pool, "SELECT count(*) FROM outbox_events"); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
}
