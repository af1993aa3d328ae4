// Package gerrit talks to Gerrit Code Review over its REST API: it queries
// changes, looks up their state, posts reviews (votes and comments), reads
// group members, and polls for changes with a persisted watermark. A Stream
// listens to `gerrit stream-events` over SSH and feeds the poller: events
// only name changes, which the poller reads through REST.
//
// The types here are ductbot's own, so the rest of ductbot does not depend
// on the REST client library. Every method takes a context, and every
// request also has a per-request timeout. Transient failures (429, 5xx,
// network errors) are retried with exponential backoff; 409 never is. Errors
// wrap the sentinels ErrNotFound, ErrConflict, ErrForbidden,
// ErrUnauthorized, ErrRateLimited and ErrUnavailable.
//
// The sub-package gerrittest is an in-process Gerrit for tests.
package gerrit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	gogerrit "github.com/andygrunwald/go-gerrit"
)

// Defaults for Options.
const (
	DefaultTimeout = 30 * time.Second
	DefaultRetries = 4
	DefaultBackoff = time.Second
)

const (
	// maxBackoff caps the wait between two attempts.
	maxBackoff = 30 * time.Second
	// maxRetryAfter caps how long a Retry-After header can make us wait.
	maxRetryAfter = 5 * time.Minute
)

// Options configure a Client.
type Options struct {
	// URL is Gerrit's base URL, such as https://gerrit.example.org or
	// https://example.org/r. It must not hold credentials.
	URL string
	// Username and Password, when Username is set, authenticate every
	// request with HTTP basic auth under /a/. Password is Gerrit's HTTP
	// password; it is never logged. Without Username, requests are
	// anonymous and read only.
	Username string
	Password string
	// HTTPClient sends the requests; defaults to a new http.Client.
	HTTPClient *http.Client
	// Timeout bounds each request attempt; defaults to DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a request that got 429, 5xx or a network
	// error is sent again; defaults to DefaultRetries. Negative: never.
	Retries int
	// Backoff is the wait before the first retry, doubled for each next one
	// (with jitter, at most 30s); defaults to DefaultBackoff. A Retry-After
	// header longer than it wins.
	Backoff time.Duration
	// Logger receives a line per retry; defaults to slog.Default().
	Logger *slog.Logger
}

// Client talks to one Gerrit server. It is safe for concurrent use.
type Client struct {
	gc      *gogerrit.Client
	timeout time.Duration
	retries int
	backoff time.Duration
	log     *slog.Logger
}

// New checks opts and returns a Client. It makes no request.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("gerrit: bad URL %q: %w", opts.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("gerrit: bad URL %q: scheme must be http or https", opts.URL)
	case u.Host == "":
		return nil, fmt.Errorf("gerrit: bad URL %q: no host", opts.URL)
	case u.User != nil:
		return nil, errors.New("gerrit: URL must not hold credentials: set Username and Password")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("gerrit: bad URL %q: no query or fragment allowed", opts.URL)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	gc, err := gogerrit.NewClient(context.Background(), u.String(), hc)
	if err != nil {
		return nil, fmt.Errorf("gerrit: bad URL %q: %w", opts.URL, err)
	}
	if opts.Username != "" {
		gc.Authentication.SetBasicAuth(opts.Username, opts.Password)
	}
	c := &Client{gc: gc, timeout: opts.Timeout, retries: opts.Retries, backoff: opts.Backoff, log: opts.Logger}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.retries == 0:
		c.retries = DefaultRetries
	case c.retries < 0:
		c.retries = 0
	}
	if c.backoff <= 0 {
		c.backoff = DefaultBackoff
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// changePath is the REST path of a change, identified as project~number.
func changePath(project string, number int) string {
	return "changes/" + url.PathEscape(project) + "~" + strconv.Itoa(number)
}

// do sends a request to path (relative to the base URL, without /a/), with
// query parameters, the JSON of in as body when in is not nil, and decodes
// the answer into out when out is not nil. It retries transient failures,
// and writes only when the answer says they were not applied.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	rel := path
	if len(query) > 0 {
		rel += "?" + query.Encode()
	}
	// shown names the request in errors and logs: the path without the
	// query, which can be long.
	shown, _, _ := strings.Cut("/"+path, "?")
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, method, rel, shown, in, out)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		var he *HTTPError
		isHTTP := errors.As(err, &he)
		var ne *netError
		isNet := errors.As(err, &ne)
		if !idempotent(method) {
			// A write whose answer was lost (a timeout, a reset, a 5xx
			// from a proxy) may have been applied: sending it again could
			// post a review twice. Retry only the answers that say it was
			// not (429, 503); the caller decides, after reading the
			// change again, whether to post once more.
			if isNet {
				return fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			if isHTTP && retryable(he.StatusCode) && he.StatusCode != http.StatusTooManyRequests && he.StatusCode != http.StatusServiceUnavailable {
				return fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
		}
		if !(isNet || isHTTP && retryable(he.StatusCode)) {
			return err
		}
		if attempt >= c.retries {
			if isNet {
				return fmt.Errorf("%w after %d attempts: %w", ErrUnavailable, attempt+1, err)
			}
			return err
		}
		wait := c.backoffFor(attempt)
		if isHTTP && he.RetryAfter > wait {
			wait = min(he.RetryAfter, maxRetryAfter)
		}
		c.log.LogAttrs(ctx, slog.LevelWarn, "gerrit request failed, retrying",
			slog.String("method", method), slog.String("path", shown),
			slog.Int("attempt", attempt+1), slog.Duration("wait", wait), slog.Any("error", err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gerrit: %s %s: giving up: %w (last error: %w)", method, shown, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// idempotent reports whether sending a request of method twice does no
// more than sending it once.
func idempotent(method string) bool {
	return method == http.MethodGet || method == http.MethodHead
}

// backoffFor is the wait after the attempt-th failure: Backoff doubled per
// attempt, capped, with "equal jitter" so that clients spread out.
func (c *Client) backoffFor(attempt int) time.Duration {
	d := c.backoff << min(attempt, 20)
	if d <= 0 || d > maxBackoff {
		d = maxBackoff
	}
	half := d / 2
	return half + rand.N(half+1)
}

// netError marks a failure to get any answer, which is worth retrying.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// once sends one attempt with the per-request timeout. path is only used
// in errors.
func (c *Client) once(ctx context.Context, method, rel, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.gc.NewRequest(ctx, method, rel, in)
	if err != nil {
		return fmt.Errorf("gerrit: %s %s: building request: %w", method, path, err)
	}
	var buf bytes.Buffer
	resp, err := c.gc.Do(req, &buf)
	if err != nil {
		if resp == nil || resp.Response == nil {
			return &netError{fmt.Errorf("gerrit: %s %s: %w", method, path, err)}
		}
		return httpError(method, path, resp.Response)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(stripXSSI(buf.Bytes()), out); err != nil {
		return fmt.Errorf("gerrit: %s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

// httpError reads the start of an error answer's plain-text body and closes
// it.
func httpError(method, path string, resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	body := strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
	return &HTTPError{
		Method:     method,
		Path:       path,
		StatusCode: resp.StatusCode,
		Body:       body,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// stripXSSI removes the )]}' line Gerrit puts before every JSON body.
func stripXSSI(b []byte) []byte {
	if rest, ok := bytes.CutPrefix(b, []byte(")]}'")); ok {
		return bytes.TrimLeft(rest, "\r\n")
	}
	return b
}
