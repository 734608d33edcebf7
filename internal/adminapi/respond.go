package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	noteError(w, msg)
	writeJSON(w, status, errorBody{Error: msg})
}

// fail answers err from a store or the database: a sentinel the caller
// can act on gets its status and message, anything else is logged and
// answered 500 without details.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, deadletter.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, deadletter.ErrNotPending), errors.Is(err, deadletter.ErrClaimed):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, deadletter.ErrInvalidFilter):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		h.logger.ErrorContext(r.Context(), "admin api request failed",
			"method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error, see the server log")
	}
}

// badRequest is a client error: the message says which input is wrong.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func invalid(format string, args ...any) error { return &badRequest{msg: fmt.Sprintf(format, args...)} }

// decodeJSON reads exactly one JSON object into v, refusing unknown
// fields and trailing data. A body over MaxBodyBytes is an
// *http.MaxBytesError; any other problem a *badRequest.
func decodeJSON(r *http.Request, v any) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooBig
		}
		return invalid("request body: %v", err)
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD silently, and a
	// filter would then match nothing instead of being refused.
	if !utf8.Valid(raw) {
		return invalid("request body: not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return tooBig
		case errors.Is(err, io.EOF):
			return invalid("request body: want a JSON object, got nothing")
		default:
			return invalid("request body: %v", err)
		}
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooBig
		}
		return invalid("request body: want a single JSON object")
	}
	return nil
}

// answerInput answers a decodeJSON or parameter error; ok is false when it did.
func answerInput(w http.ResponseWriter, err error) (ok bool) {
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, "request body larger than 1 MiB")
		return false
	}
	writeError(w, http.StatusBadRequest, err.Error())
	return false
}
