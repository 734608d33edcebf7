package main

import (
	"strings"
	"testing"

	"github.com/firstunicorn/messagekit-go/internal/config"
)

// TestValidateTokens pins DESIGN.md §5/§11: a token shorter than 16 bytes,
// in ADMIN_TOKEN or ADMIN_TOKENS, stops start-up with a message naming the
// variable and never the token; ADMIN_TOKENS may not name admin beside
// ADMIN_TOKEN.
func TestValidateTokens(t *testing.T) {
	t.Parallel()
	const long = "0123456789abcdef-long"
	tests := []struct {
		name          string
		token, tokens string
		want          string
	}{
		{"both fine", long, "ops=" + long + ",ci=sha256:" + strings.Repeat("ab", 32), ""},
		{"short ADMIN_TOKEN", "tiny-secret", "", "invalid ADMIN_TOKEN: token shorter than 16 bytes"},
		{"short in ADMIN_TOKENS", "", "ops=" + long + ",ci=tiny-secret", "invalid ADMIN_TOKENS: principal ci: token shorter than 16 bytes"},
		{"bad digest", "", "ci=sha256:zz", "invalid ADMIN_TOKENS: principal ci: want sha256: followed by 64 hex digits"},
		{"admin twice", long, "admin=" + long, "invalid ADMIN_TOKENS: principal admin is ADMIN_TOKEN's"},
		{"name twice", "", "ops=" + long + ",ops=" + long + "x", `invalid ADMIN_TOKENS: principal "ops" named twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Config{AdminToken: config.Secret(tc.token), AdminTokens: config.Secret(tc.tokens),
				ReplayDestinations: "*", ReplayClaimTimeout: 300e9,
				OutboxHealthPending: 1000, OutboxHealthStaleAfter: 300e9, OutboxHealthSlotLagBytes: 1 << 30}
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want == "":
				return
			case err == nil || !strings.HasPrefix(err.Error(), tc.want):
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			case strings.Contains(err.Error(), "tiny-secret") || strings.Contains(err.Error(), long):
				t.Fatalf("the error quotes a token: %v", err)
			}
		})
	}
}
