package main

import "github.com/firstunicorn/messagekit-go/pkg/contracts"

// The events this service publishes. The JSON is the contract: consumers
// declare their own copy of these types (see examples/consumer/events.go)
// rather than import a producer's Go package, so the services build and
// deploy independently. Add fields freely (consumers ignore unknown ones);
// renaming or removing one is a new event type or dataVersion.

// eventSource is the envelope's source of every event of this service.
const eventSource = "sales-service"

// OrderCreated is the data of sales.order.created.
type OrderCreated struct {
	OrderID  string `json:"orderId"`
	Customer string `json:"customer"`
}

// OrderLineAdded is the data of sales.order.line-added.
type OrderLineAdded struct {
	OrderID string `json:"orderId"`
	LineNo  int    `json:"lineNo"`
	SKU     string `json:"sku"`
	Qty     int    `json:"qty"`
}

var (
	orderCreated   = contracts.Define[OrderCreated]("sales.order.created")
	orderLineAdded = contracts.Define[OrderLineAdded]("sales.order.line-added")
)
