package adminapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// Encodings of a dead letter's body and key in GET /dead-letters/{id}.
const (
	EncodingUTF8   = "utf8"
	EncodingBase64 = "base64"
)

// item is a dead letter in a listing (DESIGN.md §7), plus event_type and
// discard_reason. Absent values are null.
type item struct {
	ID            int64      `json:"id"`
	EventID       *string    `json:"event_id"`
	Source        string     `json:"source"`
	Origin        string     `json:"origin"`
	Reason        string     `json:"reason"`
	ErrorMessage  *string    `json:"error_message"`
	EventType     *string    `json:"event_type"`
	DeathCount    int        `json:"death_count"`
	Status        string     `json:"status"`
	FirstSeenAt   time.Time  `json:"first_seen_at"`
	LastSeenAt    time.Time  `json:"last_seen_at"`
	ReplayCount   int        `json:"replay_count"`
	ReplayedAt    *time.Time `json:"replayed_at"`
	DiscardReason *string    `json:"discard_reason"`
	// ClaimedAt is set while a replay is publishing the dead letter.
	ClaimedAt *time.Time `json:"claimed_at"`
}

// detail is one dead letter with its message (GET /dead-letters/{id}).
// key is null when the message had none; key_encoding is then null too.
type detail struct {
	item
	OriginDetail json.RawMessage `json:"origin_detail"`
	Headers      json.RawMessage `json:"headers"`
	Key          *string         `json:"key"`
	KeyEncoding  *string         `json:"key_encoding"`
	Body         string          `json:"body"`
	BodyEncoding string          `json:"body_encoding"`
}

type itemPage struct {
	Items      []item  `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func toItem(it deadletter.Item) item {
	out := item{
		ID: it.ID, Source: string(it.Source), Origin: it.Origin, Reason: it.Reason,
		ErrorMessage: nullString(it.ErrorMessage), EventType: nullString(it.EventType),
		DeathCount: it.DeathCount, Status: string(it.Status),
		FirstSeenAt: it.FirstSeenAt.UTC(), LastSeenAt: it.LastSeenAt.UTC(),
		ReplayCount: it.ReplayCount, ReplayedAt: nullTime(it.ReplayedAt),
		DiscardReason: nullString(it.DiscardReason), ClaimedAt: nullTime(it.ClaimedAt),
	}
	if it.EventID != uuid.Nil {
		out.EventID = nullString(it.EventID.String())
	}
	return out
}

// encode returns b as text when it is valid UTF-8, else as base64.
func encode(b []byte) (text, encoding string) {
	if utf8.Valid(b) {
		return string(b), EncodingUTF8
	}
	return base64.StdEncoding.EncodeToString(b), EncodingBase64
}

func toDetail(it deadletter.Item) detail {
	d := detail{item: toItem(it), OriginDetail: it.OriginDetail, Headers: it.Headers}
	if d.OriginDetail == nil {
		d.OriginDetail = json.RawMessage("{}")
	}
	if d.Headers == nil {
		d.Headers = json.RawMessage("{}")
	}
	if it.Key != nil {
		key, enc := encode(it.Key)
		d.Key, d.KeyEncoding = &key, &enc
	}
	d.Body, d.BodyEncoding = encode(it.Body)
	return d
}

// parseTime reads an RFC 3339 query parameter; absent is the zero time.
func parseTime(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, invalid("%s: want an RFC 3339 timestamp such as 2026-01-02T15:04:05Z, got %q", name, v)
	}
	return t, nil
}

// textParam reads a text query parameter that goes into a query: NUL bytes
// and invalid UTF-8, which PostgreSQL refuses, are a *badRequest.
func textParam(r *http.Request, name string) (string, error) {
	v := r.URL.Query().Get(name)
	if !deadletter.ValidText(v) {
		return "", invalid("%s: holds a NUL byte or invalid UTF-8", name)
	}
	return v, nil
}

// parseInt reads an integer query parameter in [lo, hi]; absent is def.
func parseInt(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, invalid("%s: want an integer from %d to %d, got %q", name, lo, hi, v)
	}
	return n, nil
}

func parseFilter(r *http.Request) (deadletter.Filter, error) {
	q := r.URL.Query()
	f := deadletter.Filter{
		Status: deadletter.Status(q.Get("status")), Source: deadletter.Source(q.Get("source")),
		EventType: q.Get("event_type"), Origin: q.Get("queue"), Cursor: q.Get("cursor"),
	}
	switch f.Status {
	case "", deadletter.StatusPending, deadletter.StatusReplayed, deadletter.StatusDiscarded:
	default:
		return f, invalid("status: want pending, replayed or discarded, got %q", f.Status)
	}
	if f.Source != "" && !f.Source.Valid() {
		return f, invalid("source: want kafka or rabbitmq, got %q", f.Source)
	}
	var err error
	if f.Since, err = parseTime(r, "since"); err != nil {
		return f, err
	}
	if f.Until, err = parseTime(r, "until"); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return f, invalid("until: %s is before since %s", f.Until.Format(time.RFC3339Nano), f.Since.Format(time.RFC3339Nano))
	}
	limit, err := parseInt(r, "limit", deadletter.DefaultLimit, 1, deadletter.MaxLimit)
	if err != nil {
		return f, err
	}
	f.Limit = int(limit)
	return f, nil
}

// GET /api/v1/dead-letters
func (h *Handler) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r)
	if !answerInput(w, err) {
		return
	}
	if f.Cursor != "" {
		f.Cursor, err = h.openCursor(f.Cursor, f)
		if !answerInput(w, err) {
			return
		}
	}
	page, err := h.dl.List(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := itemPage{Items: make([]item, 0, len(page.Items)), NextCursor: nullString(h.signCursor(page.NextCursor, f))}
	for _, it := range page.Items {
		out.Items = append(out.Items, toItem(it))
	}
	writeJSON(w, http.StatusOK, out)
}

func parseID(r *http.Request) (int64, error) {
	v := chi.URLParam(r, "id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, invalid("id: want a positive integer, got %q", v)
	}
	return id, nil
}

// GET /api/v1/dead-letters/{id}
func (h *Handler) getDeadLetter(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r)
	if !answerInput(w, err) {
		return
	}
	it, err := h.dl.Get(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDetail(it))
}

type discardRequest struct {
	Reason string `json:"reason"`
}

// checkReason returns the trimmed discard reason, or a *badRequest.
func checkReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return "", invalid("reason: required, a non-empty string")
	case len(reason) > deadletter.MaxDiscardReasonBytes || !deadletter.ValidText(reason):
		return "", invalid("reason: want UTF-8 without NUL bytes, at most %d bytes", deadletter.MaxDiscardReasonBytes)
	}
	return reason, nil
}

// POST /api/v1/dead-letters/{id}/discard
func (h *Handler) discardDeadLetter(w http.ResponseWriter, r *http.Request) {
	a := actionOf(r)
	a.target = map[string]any{"id": chi.URLParam(r, "id")}
	id, err := parseID(r)
	if !answerInput(w, err) {
		return
	}
	var req discardRequest
	if !answerInput(w, decodeJSON(r, &req)) {
		return
	}
	a.target = map[string]any{"id": id, "reason": req.Reason}
	reason, err := checkReason(req.Reason)
	if !answerInput(w, err) {
		return
	}
	a.matched = 1
	it, err := h.dl.MarkDiscarded(r.Context(), id, reason)
	if err != nil {
		a.failed = 1
		h.fail(w, r, err)
		return
	}
	a.done = 1
	writeJSON(w, http.StatusOK, toDetail(it))
}

type discardResult struct {
	DiscardedCount int `json:"discarded_count"`
}

// discardPage is how many dead letters a bulk discard updates per statement.
const discardPage = 1000

// POST /api/v1/dead-letters/discard
func (h *Handler) discardDeadLetters(w http.ResponseWriter, r *http.Request) {
	a := actionOf(r)
	var req bulkRequest
	if !answerInput(w, decodeJSON(r, &req)) {
		return
	}
	a.target, a.dryRun = req, req.DryRun
	f, limit, err := req.filter("discarded")
	if !answerInput(w, err) {
		return
	}
	if req.Reason == nil {
		writeError(w, http.StatusBadRequest, "reason: required, a non-empty string")
		return
	}
	reason, err := checkReason(*req.Reason)
	if !answerInput(w, err) {
		return
	}
	if req.DryRun {
		h.dryRun(w, r, f, limit)
		return
	}
	release, ok := h.acquireBulk(w)
	if !ok {
		return
	}
	defer release()
	for a.done < limit {
		ids, err := h.dl.DiscardPage(r.Context(), f, min(discardPage, limit-a.done), reason)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		a.matched += len(ids)
		a.done += len(ids)
		if len(ids) == 0 {
			break
		}
	}
	writeJSON(w, http.StatusOK, discardResult{DiscardedCount: a.done})
}

// Group-by keys of GET /dead-letters/summary.
var summaryKeys = []string{"origin", "reason", "event_type", "source", "status"}

type groupJSON struct {
	Key              *string   `json:"key"`
	Count            int64     `json:"count"`
	OldestLastSeenAt time.Time `json:"oldest_last_seen_at"`
	NewestLastSeenAt time.Time `json:"newest_last_seen_at"`
}

type summaryJSON struct {
	GroupBy string      `json:"group_by"`
	Groups  []groupJSON `json:"groups"`
}

// GET /api/v1/dead-letters/summary
func (h *Handler) summarizeDeadLetters(w http.ResponseWriter, r *http.Request) {
	groupBy := r.URL.Query().Get("group_by")
	if groupBy == "" {
		groupBy = "origin"
	}
	if !slices.Contains(summaryKeys, groupBy) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("group_by: want one of %s, got %q",
			strings.Join(summaryKeys, ", "), deadletter.CleanText(groupBy, 64)))
		return
	}
	f, err := parseFilter(r)
	if !answerInput(w, err) {
		return
	}
	if f.Cursor != "" || r.URL.Query().Has("limit") {
		writeError(w, http.StatusBadRequest, "cursor and limit: not taken by the summary")
		return
	}
	groups, err := h.dl.Summary(r.Context(), f, groupBy)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := summaryJSON{GroupBy: groupBy, Groups: make([]groupJSON, 0, len(groups))}
	for _, g := range groups {
		var key *string
		if g.Key != nil {
			k := *g.Key
			key = &k
		}
		out.Groups = append(out.Groups, groupJSON{Key: key, Count: g.Count,
			OldestLastSeenAt: g.OldestLastSeenAt.UTC(), NewestLastSeenAt: g.NewestLastSeenAt.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
}
