package adminapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// Actions: the admin_actions.action column, the access log's action and
// the metrics' action label.
const (
	ActionReplayDeadLetter   = "dead_letter.replay"
	ActionReplayDeadLetters  = "dead_letters.replay"
	ActionDiscardDeadLetter  = "dead_letter.discard"
	ActionDiscardDeadLetters = "dead_letters.discard"
	ActionDLQRetry           = "dlq.retry"
	ActionReplayOutbox       = "outbox.replay"
	ActionReleaseClaims      = "claims.release"
)

// source label of messagekit_admin_replayed_messages_total for outbox
// replays (dead letters use their source).
const sourceOutbox deadletter.Source = "outbox"

// auditTimeout bounds writing one admin_actions row. The row is written on
// a context of its own, so a client that hangs up does not lose it.
const auditTimeout = 10 * time.Second

// maxRequestIDBytes bounds the X-Request-Id kept in the audit.
const maxRequestIDBytes = 200

// action is the admin_actions row of one mutating request: the handler
// fills it in as it goes, and audited writes it however the handler ends.
type action struct {
	name     string
	target   any
	dryRun   bool
	matched  int
	done     int
	failed   int
	replayID uuid.UUID
	err      string
	// replayed counts confirmed replays by source, for the metrics.
	replayed map[deadletter.Source]int
}

// fail records err as the action's error unless one is recorded.
func (a *action) fail(msg string) {
	if a.err == "" {
		a.err = msg
	}
}

type actionKey struct{}

// actionOf returns the action audited put in r's context; a detached one
// (never written) when r is not audited, so handlers need not check.
func actionOf(r *http.Request) *action {
	if a, ok := r.Context().Value(actionKey{}).(*action); ok {
		return a
	}
	return &action{}
}

// auditWriter remembers the status and the error message of a response.
type auditWriter struct {
	http.ResponseWriter
	status int
	errMsg string
}

func (w *auditWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// noteError is called by writeError: the message goes to the audit.
func noteError(w http.ResponseWriter, msg string) {
	if aw, ok := w.(*auditWriter); ok && aw.errMsg == "" {
		aw.errMsg = msg
	}
}

// audited wraps the handler of a mutating route: whatever way the handler
// ends (an answer, a panic, the client gone), it writes one admin_actions
// row, one access-log line and the metrics (DESIGN.md §6, §11).
func (h *Handler) audited(name string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := &action{name: name, target: map[string]any{}, replayed: map[deadletter.Source]int{}}
		aw := &auditWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), actionKey{}, a))
		start := time.Now()
		defer func() {
			rec := recover()
			status := aw.status
			switch {
			case rec != nil:
				status = http.StatusInternalServerError
				a.fail("internal error (panic), see the server log")
			case status == 0:
				status = http.StatusOK
			}
			if status >= 400 {
				a.fail(aw.errMsg)
				if a.err == "" {
					a.err = http.StatusText(status)
				}
			}
			if r.Context().Err() != nil {
				// Said first, so that an error the hang-up caused ("context
				// canceled") reads as what it is.
				const gone = "client went away before the answer"
				if a.err == "" {
					a.err = gone
				} else {
					a.err = gone + "; " + a.err
				}
			}
			h.writeAction(r, a, status, time.Since(start))
			if rec != nil {
				panic(rec)
			}
		}()
		next(aw, r)
	}
}

const insertActionSQL = `INSERT INTO admin_actions (action, principal, remote_addr, request_id, target, dry_run,
		matched_count, done_count, failed_count, replay_id, error)
	VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11) RETURNING id`

// writeAction writes a's row on a context of its own, logs the access
// line and counts the metrics.
func (h *Handler) writeAction(r *http.Request, a *action, status int, took time.Duration) {
	principal := principalOf(r)
	requestID := deadletter.CleanText(middleware.GetReqID(r.Context()), maxRequestIDBytes)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	attrs := []any{"action", a.name, "principal", principal, "request_id", requestID,
		"remote_addr", r.RemoteAddr, "status", status, "dry_run", a.dryRun,
		"matched", a.matched, "done", a.done, "failed", a.failed, "duration_ms", took.Milliseconds()}
	if a.replayID != uuid.Nil {
		attrs = append(attrs, "replay_id", a.replayID.String())
	}
	if a.err != "" {
		attrs = append(attrs, "error", a.err)
	}
	h.logger.Log(r.Context(), level, "admin action", attrs...)
	h.countAction(a, status)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
	defer cancel()
	h.insertAction(ctx, a, principal, r.RemoteAddr, requestID)
}

func (h *Handler) insertAction(ctx context.Context, a *action, principal, remoteAddr, requestID string) {
	target, err := json.Marshal(a.target)
	if err != nil {
		target = []byte("{}")
	}
	// jsonb refuses \u0000, which encoding/json writes for a NUL.
	target = []byte(strings.ReplaceAll(string(target), `\u0000`, `\ufffd`))
	var replayID any
	if a.replayID != uuid.Nil {
		replayID = a.replayID
	}
	var errText any
	if a.err != "" {
		errText = deadletter.CleanText(a.err, deadletter.MaxErrorMessageBytes)
	}
	var id int64
	if err := h.db.QueryRow(ctx, insertActionSQL, a.name, principal, nullText(remoteAddr), nullText(requestID),
		string(target), a.dryRun, a.matched, a.done, a.failed, replayID, errText).Scan(&id); err != nil {
		h.logger.ErrorContext(ctx, "admin api: action done but not recorded in admin_actions",
			"action", a.name, "principal", principal, "request_id", requestID, "done", a.done, "error", err)
	}
}

func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// countAction counts a in the metrics.
func (h *Handler) countAction(a *action, status int) {
	if h.metrics == nil {
		return
	}
	outcome := "ok"
	switch {
	case status >= 500:
		outcome = "error"
	case status >= 400:
		outcome = "refused"
	case a.failed > 0:
		outcome = "partial"
	}
	h.metrics.actions.WithLabelValues(a.name, outcome).Inc()
	if a.replayID == uuid.Nil || a.dryRun {
		return
	}
	kind := replayKinds[a.name]
	h.metrics.replays.WithLabelValues(kind).Inc()
	for src, n := range a.replayed {
		h.metrics.replayed.WithLabelValues(kind, string(src)).Add(float64(n))
	}
}

// replayKinds are the kind labels of the replay metrics, which predate
// admin_actions and keep their values.
var replayKinds = map[string]string{
	ActionReplayDeadLetter: "dead_letter", ActionReplayDeadLetters: "dead_letters",
	ActionDLQRetry: "dlq_retry", ActionReplayOutbox: "outbox",
}

// ReleaseStaleClaims returns to pending the dead letters whose replay
// claim is older than the claim timeout (the replay crashed between claim
// and publish), logs them and audits them as claims.release by
// SystemPrincipal. It returns how many it released.
func (h *Handler) ReleaseStaleClaims(ctx context.Context) (int, error) {
	ids, err := h.dl.ReleaseStale(ctx, h.claimTimeout)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	shown := ids[:min(len(ids), 1000)]
	h.logger.WarnContext(ctx, "admin api: released stale replay claims; the dead letters are pending again",
		"count", len(ids), "claim_timeout", h.claimTimeout.String(), "ids", shown)
	a := &action{name: ActionReleaseClaims, target: map[string]any{"ids": shown, "claim_timeout": h.claimTimeout.String()},
		matched: len(ids), done: len(ids)}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	h.insertAction(actx, a, SystemPrincipal, "", "")
	if h.metrics != nil {
		h.metrics.actions.WithLabelValues(a.name, "ok").Inc()
	}
	return len(ids), nil
}

// Run releases stale claims every quarter of the claim timeout until ctx
// ends; it returns nil then. Replays also release them before claiming, so
// Run only matters for claims nobody replays again.
func (h *Handler) Run(ctx context.Context) error {
	t := time.NewTicker(max(h.claimTimeout/4, time.Second))
	defer t.Stop()
	for {
		if _, err := h.ReleaseStaleClaims(ctx); err != nil && ctx.Err() == nil {
			h.logger.WarnContext(ctx, "admin api: releasing stale claims failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
