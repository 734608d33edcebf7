package catalog_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
)

// benchOrder is an order of about 1 KiB that the shop's 1.0 schema accepts.
var benchOrder = `{"orderId":"o-1001","customerId":"c-42","total":{"amount":"59.90","currency":"EUR"},"status":"placed",
"items":[{"sku":"SKU-1","quantity":2,"unitPrice":{"amount":"29.95","currency":"EUR"}},{"sku":"SKU-2","quantity":1,"unitPrice":{"amount":"9.95","currency":"EUR"}},{"sku":"SKU-3","quantity":3,"unitPrice":{"amount":"1.00","currency":"EUR"}}],
"shippingAddress":{"line1":"1 Main St","city":"Berlin","postalCode":"10115","country":"DE"},"placedAt":"2026-11-26T10:00:00Z","coupon":null,"pad":"` + strings.Repeat("x", 420) + `"}`

func BenchmarkInspect(b *testing.B) {
	c, err := catalog.Load(os.DirFS("testdata/shop"), catalog.Options{Strict: true})
	if err != nil {
		b.Fatal(err)
	}
	e, err := contracts.New("orders.order.created", "o-1", "order-service", json.RawMessage(benchOrder))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchOrder)))
	b.ReportAllocs()
	for b.Loop() {
		if v := c.Inspect(e); v != nil {
			b.Fatal(v)
		}
	}
}

func BenchmarkDecodeOnly(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(benchOrder))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdUnmarshal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var v any
		if err := json.Unmarshal([]byte(benchOrder), &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseValue(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := catalog.ParseValueForTest([]byte(benchOrder)); err != nil {
			b.Fatal(err)
		}
	}
}
