// Package k8s is everything ductbot does to Kubernetes: create an
// environment's namespace, install or upgrade its Helm release and wait for
// it, run the release's tests and collect their logs, repair a release left
// pending by a crash, tear an environment down, and list what exists.
//
// Each Helm action gets a fresh per-namespace action.Configuration (the
// namespace resources land in is the kube client's, and a Configuration must
// not be shared between goroutines). At most one Helm operation runs on a
// release at a time, even when a caller gives up waiting for one.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Labels and their keys on everything ductbot creates.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "ductbot"
	LabelEnv       = "ductbot.dev/env"
	LabelChange    = "ductbot.dev/change"
	LabelPatchSet  = "ductbot.dev/patchset"
	LabelProject   = "ductbot.dev/project" // sanitised: '/' becomes '.'
	LabelKind      = "ductbot.dev/kind"
	// LabelInstance names the ductbot instance (Options.Instance) that owns
	// an object. The client stamps it on everything it creates and sees
	// only objects that carry its own value, so that several ductbots (a
	// staging and a production one) can share a cluster without sweeping
	// each other's environments. See Client.Owns for objects that predate it.
	LabelInstance = "ductbot.dev/instance"
	// AnnotationProject holds the project name exactly as in Gerrit.
	AnnotationProject = "ductbot.dev/project"
)

// Sentinel errors; callers use errors.Is.
var (
	// ErrUnreachable: the cluster did not answer.
	ErrUnreachable = errors.New("kubernetes cluster unreachable")
	// ErrReleaseNotFound: no release of that name in that namespace.
	ErrReleaseNotFound = errors.New("release not found")
	// ErrForeignInstance: the object belongs to another ductbot instance;
	// this client refuses to change or delete it.
	ErrForeignInstance = errors.New("belongs to another ductbot instance")
)

// DefaultInstance is the instance of a client whose Options.Instance is
// empty, and the owner of ductbot's objects that carry no LabelInstance
// (created by ductbots older than the label).
const DefaultInstance = "ductbot"

// DefaultMaxLogBytes is the bound on one test pod's collected log when
// Options.MaxLogBytes is not set.
const DefaultMaxLogBytes = 1 << 20

// Options says which cluster to talk to.
type Options struct {
	// Kubeconfig is a kubeconfig path; empty means in-cluster config (or
	// $KUBECONFIG / ~/.kube/config when not in a cluster).
	Kubeconfig string
	// Context is the kubeconfig context; empty means its current one.
	Context string
	// Logger receives Helm's debug log at debug level.
	Logger *slog.Logger
	// Instance names this ductbot among those sharing the cluster (config
	// kubernetes.instance). It is stamped as LabelInstance on every
	// namespace, Helm release and policy object the client creates, and
	// the client lists, changes and deletes only objects of its own
	// instance. Empty means DefaultInstance. It must be a valid label value.
	Instance string
	// MaxLogBytes bounds each test pod's log as Test collects it, in
	// memory too: the head and the tail are kept and the middle is cut
	// with a marker (the shape of text.HeadTail). Zero or less means
	// DefaultMaxLogBytes; the patch under test controls how much its
	// tests print.
	MaxLogBytes int
}

// Client talks to one cluster. It is safe for concurrent use.
type Client struct {
	opts      Options
	rest      *rest.Config
	clientset kubernetes.Interface
	log       *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex // namespace/release -> held while Helm works on it

	// onLocked, when set (by tests), is called when an operation on a
	// release has acquired the release's lock.
	onLocked func(key string)
}

// New connects lazily: it reads the kubeconfig but does not call the cluster.
func New(opts Options) (*Client, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Instance == "" {
		opts.Instance = DefaultInstance
	}
	if errs := validation.IsValidLabelValue(opts.Instance); len(errs) > 0 {
		return nil, fmt.Errorf("instance %q is not a valid Kubernetes label value: %s", opts.Instance, strings.Join(errs, "; "))
	}
	if opts.MaxLogBytes <= 0 {
		opts.MaxLogBytes = DefaultMaxLogBytes
	}
	c := &Client{opts: opts, log: opts.Logger, locks: map[string]*sync.Mutex{}}
	rc, err := c.getter("default").ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %q (context %q): %w", opts.Kubeconfig, opts.Context, err)
	}
	rc.QPS, rc.Burst = 50, 100
	c.rest = rc
	if c.clientset, err = kubernetes.NewForConfig(rc); err != nil {
		return nil, fmt.Errorf("building a Kubernetes client: %w", err)
	}
	return c, nil
}

// Instance is the ductbot instance this client acts for (Options.Instance,
// or DefaultInstance).
func (c *Client) Instance() string { return c.opts.Instance }

// Clientset is the typed client, for callers that list or watch directly.
func (c *Client) Clientset() kubernetes.Interface { return c.clientset }

// Reachable checks that the API server answers its readiness endpoint.
func (c *Client) Reachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.clientset.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return nil
}

func (c *Client) getter(namespace string) genericclioptions.RESTClientGetter {
	f := genericclioptions.NewConfigFlags(true)
	f.KubeConfig = &c.opts.Kubeconfig
	f.Context = &c.opts.Context
	ns := namespace
	f.Namespace = &ns
	return f
}

// helmLog collects Helm's debug log for one operation, so that a failure can
// carry its last lines.
type helmLog struct {
	mu    sync.Mutex
	lines []string
	log   *slog.Logger
}

func (h *helmLog) printf(format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	h.mu.Lock()
	h.lines = append(h.lines, line)
	if len(h.lines) > 200 {
		h.lines = h.lines[len(h.lines)-100:]
	}
	h.mu.Unlock()
	h.log.Debug("helm", "msg", line)
}

// tail returns the last n lines Helm logged.
func (h *helmLog) tail(n int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	lines := h.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// actionConfig is a fresh Helm configuration for one namespace and one
// operation. Releases are stored as Secrets in the release's namespace.
func (c *Client) actionConfig(namespace string) (*action.Configuration, *helmLog, error) {
	hl := &helmLog{log: c.log.With("namespace", namespace)}
	cfg := new(action.Configuration)
	if err := cfg.Init(c.getter(namespace), namespace, "secret", hl.printf); err != nil {
		return nil, nil, fmt.Errorf("initialising Helm for namespace %s: %w", namespace, err)
	}
	return cfg, hl, nil
}

// withRelease runs op while holding the release's lock, in its own goroutine,
// and returns when op returns or ctx ends, whichever is first. When ctx ends
// first the lock stays held until op really finishes (Helm's actions do not
// all stop with a context), so a later operation on the same release waits
// for it instead of failing with "another operation is in progress".
func (c *Client) withRelease(ctx context.Context, namespace, name string, op func() error) error {
	return c.withReleaseGrace(ctx, namespace, name, 0, op)
}

// withReleaseGrace is withRelease that, once ctx ends while op runs,
// waits up to grace more for op to return (for an op that stops itself
// when ctx ends), so that the caller sees op's own error and knows that
// nothing of it goes on.
func (c *Client) withReleaseGrace(ctx context.Context, namespace, name string, grace time.Duration, op func() error) error {
	key := namespace + "/" + name
	c.mu.Lock()
	l, ok := c.locks[key]
	if !ok {
		l = &sync.Mutex{}
		c.locks[key] = l
	}
	c.mu.Unlock()

	acquired := make(chan struct{})
	go func() { l.Lock(); close(acquired) }()
	select {
	case <-acquired:
		if c.onLocked != nil {
			c.onLocked(key)
		}
	case <-ctx.Done():
		go func() { <-acquired; l.Unlock() }()
		return fmt.Errorf("waiting for another operation on release %s: %w", key, ctx.Err())
	}
	done := make(chan error, 1)
	go func() {
		defer l.Unlock()
		done <- op()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	if grace > 0 {
		select {
		case err := <-done:
			if err == nil {
				return nil // it had finished after all
			}
			if !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (%w)", err, ctx.Err())
			}
			return err
		case <-time.After(grace):
		}
	}
	return fmt.Errorf("release %s: %w (Helm may still be finishing in the background)", key, ctx.Err())
}
