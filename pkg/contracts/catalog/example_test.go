package catalog_test

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
)

// A producer builds its events through a strict catalog: an unlisted type
// and data breaking its schema are refused, naming the field.
func ExampleCatalog_New() {
	cat, err := catalog.Load(os.DirFS("testdata/shop"), catalog.Options{Strict: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = cat.New("identity.user.registered", "user-42", "identity-service",
		json.RawMessage(`{"userId": 42, "email": "ada@example.com"}`))
	fmt.Println(err)
	_, err = cat.New("identity.user.registered", "user-42", "identity-service",
		json.RawMessage(`{"userId": "42", "email": "ada@example.com"}`))
	fmt.Println(err)
	_, err = cat.New("identity.user.deleted", "user-42", "identity-service", nil)
	fmt.Println(err)
	// Output:
	// <nil>
	// event catalog: data.userId: got string, want integer (schema schemas/identity.user.registered.v1.schema.json, dataVersion 1.0)
	// event catalog: eventType: "identity.user.deleted" is not in the event catalog
}

// Compare lists what changed between two catalogs; Breaking keeps what
// would break consumers.
func ExampleCompare() {
	old, _ := catalog.Load(os.DirFS("testdata/shop"), catalog.Options{})
	cur, _ := catalog.Load(os.DirFS("testdata/python-docs"), catalog.Options{})
	for _, c := range catalog.Breaking(catalog.Compare(old, cur)) {
		fmt.Println(c)
	}
	// Output:
	// gamification.xp.awarded: event type removed
	// identity.user.registered: event type removed
	// orders.order.created 1.0: schema version removed
	// orders.order.created 2.0: schema version removed
}
