package adminapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// A listing's next_cursor is the store's cursor followed by "." and a MAC
// over it and the listing's filter, keyed by the API's tokens: a cursor
// that was edited, made up, or taken from another filter is refused with
// 400 rather than silently listing from elsewhere. Replicas configured
// with the same tokens accept each other's cursors.

// macBytes is how much of the HMAC-SHA256 a cursor carries.
const macBytes = 12

// cursorKey derives the cursor MAC key from the principals' digests.
func cursorKey(ps []principal) []byte {
	m := hmac.New(sha256.New, []byte("messagekit admin api cursor"))
	for _, p := range ps {
		m.Write([]byte(p.name))
		m.Write(p.digest[:])
	}
	return m.Sum(nil)
}

// filterFingerprint is what a cursor is bound to besides its position.
func filterFingerprint(f deadletter.Filter) string {
	t := func(v time.Time) string {
		if v.IsZero() {
			return ""
		}
		return strconv.FormatInt(v.UnixNano(), 10)
	}
	return strings.Join([]string{string(f.Status), string(f.Source), f.EventType, f.Origin, t(f.Since), t(f.Until)}, "\x00")
}

func (h *Handler) cursorMAC(inner string, f deadletter.Filter) string {
	m := hmac.New(sha256.New, h.cursorKey)
	m.Write([]byte(inner))
	m.Write([]byte{0})
	m.Write([]byte(filterFingerprint(f)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:macBytes])
}

// signCursor returns the store's cursor as the API gives it out.
func (h *Handler) signCursor(inner string, f deadletter.Filter) string {
	if inner == "" {
		return ""
	}
	return inner + "." + h.cursorMAC(inner, f)
}

// openCursor returns the store's cursor of a cursor signCursor gave out
// for the same filter, or a *badRequest.
func (h *Handler) openCursor(c string, f deadletter.Filter) (string, error) {
	inner, mac, ok := strings.Cut(c, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(h.cursorMAC(inner, f))) {
		return "", invalid("cursor: not one this API gave out for this filter; start again without it")
	}
	return inner, nil
}
