package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// TestBrowser loads the dashboard in headless Chromium, follows a run link,
// reads the log, and checks that a commit subject holding a <script> tag is
// shown as text and never runs.
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is required in CI: %v", err)
		}
		t.Skipf("skipping the browser test: %s not found (install the Debian package chromium to run it)", chromiumPath)
	}
	f := newFixture(t, nil)
	base := serve(t, f.server.Handler())

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}

	// Record (and dismiss) any dialog: none may open.
	var (
		mu      sync.Mutex
		dialogs []string
	)
	dialogEvents := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogEvents {
			if err != nil {
				return
			}
			mu.Lock()
			dialogs = append(dialogs, ev.Message)
			mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{})
		}
	}()

	// The dashboard.
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(base+"/"))
	if err != nil {
		t.Fatalf("load /: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("GET / status %d", resp.Status)
	}
	runLink := chromedp.CSS(fmt.Sprintf(`a.run-link[href="%s"]`, RunPath(f.passed)))
	must(t, chromedp.Do(ctx, chromedp.WaitVisible(runLink)))
	checkNoScript(t, ctx, "dashboard")
	subjects, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("td.subject, .sub.subject")].map(e => e.textContent.trim())`))
	must(t, err)
	if !slices.Contains(subjects, xss) {
		t.Errorf("dashboard subjects %q do not show %q as text", subjects, xss)
	}
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("table.envs td:nth-child(2) a").href`))
	must(t, err)
	if want := gerritURL + "/c/mediawiki/extensions/WikiLambda/+/12345/3"; href != want {
		t.Errorf("change link = %q, want %q", href, want)
	}
	screenshot(t, ctx, "dashboard.png")

	// Follow the run link by clicking it.
	resp, err = chromedp.RunResponse(ctx, chromedp.Click(runLink))
	if err != nil {
		t.Fatalf("click run link: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("run page status %d", resp.Status)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	must(t, err)
	if want := base + RunPath(f.passed); loc != want {
		t.Fatalf("after click at %q, want %q", loc, want)
	}
	must(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("L3"))))
	logText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("pre.lines")))
	must(t, err)
	for _, want := range []string{"Running e2e suite", "PASS wiki loads", "progress 100%", "<b>not bold</b> & done", "FAIL evaluator answers"} {
		if !strings.Contains(logText, want) {
			t.Errorf("log on the page does not show %q; it shows:\n%s", want, logText)
		}
	}
	line3, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("L3")))
	must(t, err)
	if !strings.Contains(line3, "PASS wiki loads") {
		t.Errorf("#L3 = %q, want the line PASS wiki loads", line3)
	}
	lead, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("p.lead")))
	must(t, err)
	if strings.TrimSpace(lead) != xss {
		t.Errorf("run subject shown as %q, want the text %q", lead, xss)
	}
	checkNoScript(t, ctx, "run page")
	screenshot(t, ctx, "run.png")

	// The run page on a phone.
	must(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulatePortrait), chromedp.Reload()))
	must(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("L3"))))
	screenshot(t, ctx, "run-phone.png")

	// Search from the dashboard's form: the browser sends ?q= and the page
	// lists only what matches. A run is testing, so the page reloads itself.
	must(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))
	_, err = chromedp.Run(ctx, chromedp.NavigateResponse(base+"/"))
	must(t, err)
	refresh, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`(document.querySelector('meta[http-equiv="refresh"]') || {content: ""}).content`))
	must(t, err)
	if refresh != "10" {
		t.Errorf("dashboard with a testing run: refresh meta content = %q, want 10", refresh)
	}
	must(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "other CHANGE")))
	resp, err = chromedp.RunResponse(ctx, chromedp.Submit(chromedp.CSS(`input[name="q"]`)))
	if err != nil {
		t.Fatalf("submit the search: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("search status %d", resp.Status)
	}
	loc, err = chromedp.Run(ctx, chromedp.Location())
	must(t, err)
	if !strings.Contains(loc, "q=other+CHANGE") {
		t.Errorf("after the search at %q, want ?q=other+CHANGE", loc)
	}
	found, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("a.run-link, a.env-link")].map(a => a.getAttribute("href"))`))
	must(t, err)
	if want := []string{EnvPath("custom-ab12"), RunPath(f.failed)}; !slices.Equal(found, want) {
		t.Errorf("search found %q, want %q", found, want)
	}
	screenshot(t, ctx, "search.png")

	mu.Lock()
	defer mu.Unlock()
	if len(dialogs) > 0 {
		t.Errorf("dialogs opened: %q", dialogs)
	}
}

// serve runs h on a loopback port until the test ends and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shut down the server: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// checkNoScript fails if the page has any script element, or any element
// or text node made from the subject's markup.
func checkNoScript(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("script").length`))
	must(t, err)
	if n != 0 {
		t.Errorf("%s has %d script elements, want none", where, n)
	}
	fired, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`[...document.scripts].some(s => s.textContent.includes("alert(1)"))`))
	must(t, err)
	if fired {
		t.Errorf("%s has a script element with the subject's alert(1)", where)
	}
}

// screenshot saves a full-page PNG to the test's temporary directory and, if
// DUCTBOT_SCREENSHOT_DIR is set, there too.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("DUCTBOT_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
