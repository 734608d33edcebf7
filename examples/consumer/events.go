package main

import "github.com/firstunicorn/messagekit-go/pkg/contracts"

// The events this service consumes, as the sales service publishes them.
// This is the consumer's own copy of the producer's types
// (examples/producer/events.go), with only the fields it needs: services
// share the JSON contract, not Go packages, so each builds and deploys on
// its own, and unknown fields the producer adds later are ignored.

// OrderCreated is the data of sales.order.created.
type OrderCreated struct {
	OrderID string `json:"orderId"`
}

// OrderLineAdded is the data of sales.order.line-added.
type OrderLineAdded struct {
	OrderID string `json:"orderId"`
	LineNo  int    `json:"lineNo"`
}

var (
	orderCreated   = contracts.Define[OrderCreated]("sales.order.created")
	orderLineAdded = contracts.Define[OrderLineAdded]("sales.order.line-added")
)
