package gerrit

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors. Errors returned by this package wrap them; test with
// errors.Is, never with status codes.
var (
	// ErrNotFound: the change, revision, group or account does not exist or
	// is not visible (404).
	ErrNotFound = errors.New("gerrit: not found")
	// ErrConflict: the request conflicts with the change's state, such as a
	// vote on a closed or outdated patch set (409). Never retried.
	ErrConflict = errors.New("gerrit: conflict")
	// ErrForbidden: the account may not do this, such as voting a label
	// (403).
	ErrForbidden = errors.New("gerrit: forbidden")
	// ErrUnauthorized: the credentials were refused (401).
	ErrUnauthorized = errors.New("gerrit: unauthorized")
	// ErrRateLimited: Gerrit still answered 429 when the retries ran out.
	ErrRateLimited = errors.New("gerrit: rate limited")
	// ErrUnavailable: Gerrit answered 5xx, or could not be reached, until
	// the retries ran out.
	ErrUnavailable = errors.New("gerrit: unavailable")
	// ErrTooManyResults: a query kept announcing more results beyond the
	// page guard.
	ErrTooManyResults = errors.New("gerrit: too many results")
)

// maxErrorBody bounds how much of an error body an HTTPError keeps.
const maxErrorBody = 256

// HTTPError is a non-2xx answer from Gerrit. Its Is method maps the status
// to the sentinel errors, so errors.Is(err, ErrNotFound) works on it.
type HTTPError struct {
	Method     string
	Path       string // the request path, without the query
	StatusCode int
	Body       string // the start of Gerrit's plain-text error message
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("gerrit: %s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Is reports whether target is the sentinel error for e's status code.
func (e *HTTPError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrUnavailable:
		return e.StatusCode >= 500
	}
	return false
}

// retryable reports whether a request that got status may succeed if sent
// again.
func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
