// Package amqpheaders renders an AMQP message's properties and headers as
// the JSON object the dead_letters.headers column holds for RabbitMQ dead
// letters (DESIGN.md §4: "for AMQP, properties go into headers under
// properties"), and reads it back for a replay (DESIGN.md §6):
//
//	{"properties": {"message_id": "9b2c…", "type": "orders.order.created", "content_type": "application/json",
//	                "delivery_mode": 2, "timestamp": "2026-11-26T10:00:00Z", …},
//	 "headers": {"x-death": [{"count": 1, "reason": "rejected", "queue": "orders.q", …}],
//	             "x-aggregate-id": "order-7", "x-kafka-partition": 3, "x-kafka-offset": 42},
//	 "header_types": {"x-kafka-partition": "int32", "x-kafka-offset": "int64"}}
//
// Properties that are not set are left out. Header values map to JSON
// naturally (tables to objects, arrays to arrays, numbers to numbers,
// timestamps to RFC 3339 strings, byte arrays to base64 strings), and
// "header_types" records the AMQP type of each top-level header whose JSON
// form does not say it: int8, uint8, int16, uint16, int32, uint32, int64,
// float32, float64, decimal ({"scale","value"}), timestamp, bytes (base64),
// and string-base64 for a string that is not valid UTF-8 or holds a NUL byte
// (which jsonb can not store). A string property or a top-level header
// name that is not valid UTF-8 or holds a NUL is shown cleaned (U+FFFD) and
// kept byte for byte, base64, in "raw_properties" (by property name) and
// "raw_header_keys" (by the cleaned name). So properties and top-level
// headers, the parts a replay keeps, round-trip exactly; values nested in tables and arrays keep their
// JSON form only (numbers come back as int64 or float64, strings with
// invalid UTF-8 or NUL get U+FFFD), which is enough for x-death, the only
// nested header RabbitMQ writes.
//
// This package is apart from package deadletter so that the store does not
// depend on the AMQP client.
package amqpheaders
