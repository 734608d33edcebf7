package adminapi

// SetAfterClaim makes h call f between claiming dead letters and
// publishing them, so a test can stop or kill the process there.
func SetAfterClaim(h *Handler, f func()) { h.afterClaim = f }
