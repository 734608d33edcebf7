package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"go.opentelemetry.io/otel/propagation"
)

// maxBodyBytes bounds request bodies; larger ones get 413.
const maxBodyBytes = 64 << 10

// decodeJSON reads r's body, one JSON object with only v's fields, into v.
// When it cannot, it answers 400 (or 413 for a body over maxBodyBytes) with
// an error naming the problem, and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooLarge *http.MaxBytesError
	if err == nil {
		switch extra := dec.Decode(&struct{}{}); {
		case extra == io.EOF:
			return true
		case errors.As(extra, &tooLarge):
			err = extra
		default:
			err = errors.New("request body must hold one JSON object and nothing after it")
		}
	}
	if errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit))
		return false
	}
	writeError(w, http.StatusBadRequest, describeJSONError(err))
	return false
}

// describeJSONError turns encoding/json's errors into messages for API
// callers, naming the field when there is one.
func describeJSONError(err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "request body must be a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of input"
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return "request body must be a JSON object"
	case errors.As(err, &typeErr):
		return fmt.Sprintf("%q must be %s", typeErr.Field, jsonKind(typeErr.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no error type for this one.
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return err.Error()
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	}
	return "a " + t.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do then
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// withTraceContext puts the caller's W3C trace context (the traceparent and
// tracestate headers) into the request's context, where outbox.Writer finds
// it and stores it with the event, so one trace runs from the HTTP caller
// to every consumer. A service with an OpenTelemetry SDK would start a
// server span here instead (otelhttp.NewHandler); Writer takes that up the
// same way.
func withTraceContext(next http.Handler) http.Handler {
	var w3c propagation.TraceContext
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := w3c.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
