package main

import (
	"context"
	"net/http"
	"time"
)

// healthz is the liveness probe: 200 while the process serves HTTP.
func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type pinger interface {
	Ping(ctx context.Context) error
}

// readyz is the readiness probe: 200 when the database answers a ping
// within 2 s, else 503 with the reason. Kafka is deliberately not checked:
// the outbox lets the service take orders while Kafka is down.
func readyz(db pinger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "database: " + err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}
