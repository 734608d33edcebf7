package adminapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// MinTokenBytes is the shortest bearer token New accepts.
const MinTokenBytes = 16

// AdminPrincipal is the principal of Config.Token (ADMIN_TOKEN).
const AdminPrincipal = "admin"

// SystemPrincipal is the principal of what the API does on its own, such as
// releasing stale claims.
const SystemPrincipal = "system"

// anonymous is the principal of a GET let through by ReadOpen without a
// token.
const anonymous = "anonymous"

// digestPrefix marks a token given as the hex SHA-256 of the token.
const digestPrefix = "sha256:"

// principal is one accepted token: a name and its token's SHA-256.
type principal struct {
	name   string
	digest [sha256.Size]byte
}

// ParseTokens parses ADMIN_TOKENS, "name=token,name=token" (a token may be
// "sha256:<hex>", the SHA-256 of the token), into a map from name to token.
// It returns an error, which never quotes a token, for an empty or
// repeated name, a missing "=", or an empty token; tokens are checked by
// [CheckToken].
func ParseTokens(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, token, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		switch {
		case !ok || name == "":
			return nil, fmt.Errorf("entry %d: want name=token", i+1)
		case token == "":
			return nil, fmt.Errorf("principal %q: empty token", name)
		case out[name] != "":
			return nil, fmt.Errorf("principal %q named twice", name)
		}
		out[name] = token
	}
	return out, nil
}

// CheckToken returns an error, which never quotes the token, when token is
// not acceptable: a plaintext token shorter than MinTokenBytes, or a
// "sha256:" form that is not 64 hex digits.
func CheckToken(token string) error {
	_, err := tokenDigest(token)
	return err
}

func tokenDigest(token string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	if hexDigest, ok := strings.CutPrefix(token, digestPrefix); ok {
		b, err := hex.DecodeString(hexDigest)
		if err != nil || len(b) != sha256.Size {
			return d, fmt.Errorf("want %s followed by 64 hex digits", digestPrefix)
		}
		copy(d[:], b)
		return d, nil
	}
	if len(token) < MinTokenBytes {
		return d, fmt.Errorf("token shorter than %d bytes", MinTokenBytes)
	}
	return sha256.Sum256([]byte(token)), nil
}

// principals builds the accepted tokens of cfg, sorted by name.
func principals(cfg Config) ([]principal, error) {
	named := map[string]string{}
	for name, token := range cfg.Tokens {
		named[name] = token
	}
	if cfg.Token != "" {
		if _, dup := named[AdminPrincipal]; dup {
			return nil, fmt.Errorf("adminapi: principal %q is both Token and in Tokens", AdminPrincipal)
		}
		named[AdminPrincipal] = cfg.Token
	}
	out := make([]principal, 0, len(named))
	for name, token := range named {
		d, err := tokenDigest(token)
		if err != nil {
			return nil, fmt.Errorf("adminapi: principal %q: %w", name, err)
		}
		out = append(out, principal{name: name, digest: d})
	}
	slices.SortFunc(out, func(a, b principal) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// match returns the principal whose token is token. It compares the
// token's digest with every principal's in constant time, so neither the
// time nor the order tells which came close.
func (h *Handler) match(token string) (string, bool) {
	d := sha256.Sum256([]byte(token))
	found := -1
	for i := range h.principals {
		if subtle.ConstantTimeCompare(d[:], h.principals[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return h.principals[found].name, true
}

type principalKey struct{}

// principalOf returns the principal authorize found for r.
func principalOf(r *http.Request) string {
	if p, ok := r.Context().Value(principalKey{}).(string); ok {
		return p
	}
	return anonymous
}

// authorize enforces the bearer token (DESIGN.md §7, §11) and puts the
// principal in the request's context.
func (h *Handler) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(h.principals) == 0 {
			writeError(w, http.StatusServiceUnavailable, "ADMIN_TOKEN is not set (nor ADMIN_TOKENS): the admin API is disabled")
			return
		}
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if h.readOpen && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if name, found := h.match(strings.TrimSpace(token)); ok && found {
				r = r.WithContext(context.WithValue(r.Context(), principalKey{}, name))
			}
			next.ServeHTTP(w, r)
			return
		}
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="messagekit-admin"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		name, ok := h.match(strings.TrimSpace(token))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="messagekit-admin", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid bearer token")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, name)))
	})
}
