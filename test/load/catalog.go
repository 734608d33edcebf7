package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// catalogSuffix marks a bridge run's name when that run validates every
// record against the event catalog (-catalog).
const catalogSuffix = "+catalog"

// loadSchema is the JSON Schema of the records' data with -catalog: the
// size of a real event's schema (an order with lines, money by $ref, an
// address), which the records' data satisfies.
const loadSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "load.item.recorded 1.0",
  "type": "object",
  "properties": {
    "seq": {"type": "integer", "minimum": 0},
    "pad": {"type": "string"},
    "orderId": {"type": "string", "minLength": 1, "maxLength": 64},
    "customerId": {"type": "string", "pattern": "^c-[0-9]+$"},
    "total": {"$ref": "money.schema.json"},
    "status": {"type": "string", "enum": ["placed", "paid", "shipped", "cancelled"]},
    "items": {
      "type": "array", "minItems": 1, "maxItems": 100,
      "items": {
        "type": "object",
        "properties": {
          "sku": {"type": "string", "pattern": "^SKU-[0-9]+$"},
          "quantity": {"type": "integer", "minimum": 1},
          "unitPrice": {"$ref": "money.schema.json"}
        },
        "required": ["sku", "quantity", "unitPrice"]
      }
    },
    "shippingAddress": {
      "type": "object",
      "properties": {
        "line1": {"type": "string"}, "city": {"type": "string"},
        "postalCode": {"type": "string"}, "country": {"type": "string", "pattern": "^[A-Z]{2}$"}
      },
      "required": ["city", "country"]
    },
    "placedAt": {"type": "string", "format": "date-time"},
    "coupon": {"type": ["string", "null"]}
  },
  "required": ["seq", "orderId", "customerId", "total", "items", "status"]
}`

const moneySchema = `{
  "type": "object",
  "properties": {
    "amount": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,4})?$"},
    "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]}
  },
  "required": ["amount", "currency"]
}`

// writeCatalog writes the event catalog of the records into dir/catalog
// and returns its path.
func writeCatalog(dir string) (string, error) {
	root := filepath.Join(dir, "catalog")
	files := map[string]string{
		"events.toml":   fmt.Sprintf("[events.%q]\nowner_service = \"load-tool\"\nschemas = { \"1.0\" = \"schemas/load.item.recorded.v1.schema.json\" }\n", routingKey),
		"services.toml": "[services.load-tool]\nevents_published = [\"" + routingKey + "\"]\n",
		"schemas/load.item.recorded.v1.schema.json": loadSchema,
		"schemas/money.schema.json":                 moneySchema,
	}
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return "", err
		}
	}
	return root, nil
}

// orderData is a record's data with -catalog: an order that the schema
// accepts, padded by pad characters.
func orderData(seq, pad int) map[string]any {
	money := func(a string) map[string]any { return map[string]any{"amount": a, "currency": "EUR"} }
	items := make([]any, 3)
	for i := range items {
		items[i] = map[string]any{"sku": fmt.Sprintf("SKU-%d", seq%1000+i), "quantity": i + 1, "unitPrice": money("9.99")}
	}
	return map[string]any{
		"seq": seq, "pad": strings.Repeat("x", pad),
		"orderId": fmt.Sprintf("o-%d", seq), "customerId": fmt.Sprintf("c-%d", seq%aggregates),
		"total": money("59.94"), "status": "placed", "items": items,
		"shippingAddress": map[string]any{"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
		"placedAt":        "2026-11-26T10:00:00Z", "coupon": nil,
	}
}

// printCatalogCost prints, for -catalog alternate, each catalog run's rate
// over the mean of its neighbouring runs without the catalog, and the
// ratio of the means.
func printCatalogCost(f *os.File, r *report) {
	var on, off []float64
	fmt.Fprintln(f, "\nevent catalog on vs off (same run; rate over the mean of the neighbouring off runs):")
	for i, b := range r.Bridges {
		if !strings.HasSuffix(b.Name, catalogSuffix) {
			off = append(off, b.Rate)
			continue
		}
		on = append(on, b.Rate)
		var sum float64
		var n int
		for _, j := range []int{i - 1, i + 1} {
			if j >= 0 && j < len(r.Bridges) && !strings.HasSuffix(r.Bridges[j].Name, catalogSuffix) {
				sum += r.Bridges[j].Rate
				n++
			}
		}
		if n > 0 {
			fmt.Fprintf(f, "  %s: %.0f records/s, %.3f× its neighbours (%.0f)\n", b.Name, b.Rate, b.Rate/(sum/float64(n)), sum/float64(n))
		}
	}
	if len(on) > 0 && len(off) > 0 {
		fmt.Fprintf(f, "  mean on %.0f / mean off %.0f = %.3f; CPU µs/record is in the table above\n", mean(on), mean(off), mean(on)/mean(off))
	}
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
