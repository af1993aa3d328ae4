// Package localcluster runs a real Kubernetes control plane on one machine
// without a container runtime: etcd, kube-apiserver (RBAC on),
// kube-controller-manager and kube-scheduler, with kwok simulating a node and
// its pods. Deployments become ready, `helm test` hook pods end Succeeded or
// Failed as their sim.ductbot.dev/outcome annotation asks, pods annotated
// with sim.ductbot.dev/log serve those lines as their log, and pods
// annotated with sim.ductbot.dev/mode crash-loop, fail to pull their image
// or never become Ready.
//
// Tests import it (usually once per package, from TestMain); `ductbot-dev
// cluster` runs one by hand. Every process it starts is stopped by Stop, by
// PID and process group, and dies with the parent process if that is killed.
package localcluster

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ductbot/ductbot/internal/text"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

//go:embed assets/stages.yaml
var stagesYAML []byte

//go:embed assets/logs-crd.yaml
var logsCRDYAML []byte

// Annotations a pod can carry to steer the simulation.
const (
	// OutcomeAnnotation on a `helm test` hook pod: "pass" (the default) or "fail".
	OutcomeAnnotation = "sim.ductbot.dev/outcome"
	// DurationAnnotation on a `helm test` hook pod: how long it runs (default 1.5s).
	DurationAnnotation = "sim.ductbot.dev/duration"
	// LogAnnotation on any pod: the lines its containers print.
	LogAnnotation = "sim.ductbot.dev/log"
	// ModeAnnotation on any pod: how it misbehaves, as a broken service
	// does. See the Mode constants; absent or "" means normal.
	ModeAnnotation = "sim.ductbot.dev/mode"
	// NodeName is the simulated node pods are scheduled to.
	NodeName = "kwok-node-0"
)

// The values of ModeAnnotation (the example chart's
// <component>.simulate.mode).
const (
	// ModeCrash: the containers start, exit with status 1 a second later
	// and wait three seconds in CrashLoopBackOff, again and again, with a
	// growing restart count and a BackOff warning event each time.
	ModeCrash = "crash"
	// ModeImageMissing: the image cannot be pulled: ErrImagePull, then
	// ImagePullBackOff, again and again; the pod stays Pending.
	ModeImageMissing = "image-missing"
	// ModeNeverReady: the containers run and are never Ready (a failing
	// readiness probe, with an Unhealthy warning event).
	ModeNeverReady = "never-ready"
)

// Options controls Start.
type Options struct {
	// Binaries to run; nil means Install without building.
	Binaries *Binaries
	// Dir is the working folder (data, certificates, logs). Empty: a new
	// temporary folder, removed by Stop.
	Dir string
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
	// StartTimeout bounds the whole start; default 90s.
	StartTimeout time.Duration
}

// Cluster is a running local control plane.
type Cluster struct {
	// Dir holds everything the cluster writes; logs/ has each process's log.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig (system:masters).
	Kubeconfig string
	// RESTConfig is the same admin identity for Go clients.
	RESTConfig *rest.Config
	// Client is a clientset built from RESTConfig.
	Client kubernetes.Interface

	removeDir bool
	procs     []*process
	stopSim   context.CancelFunc
	simDone   chan struct{}
	stopOnce  sync.Once
	stopErr   error
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set before done is closed
}

// Start brings up a cluster and returns once the API server is ready and the
// simulated node is Ready. On error everything already started is stopped.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	bins := opts.Binaries
	if bins == nil {
		if bins, err = Install(ctx, InstallOptions{}); err != nil {
			return nil, err
		}
	}
	c := &Cluster{Dir: opts.Dir}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "ductbot-cluster-"); err != nil {
			return nil, err
		}
		c.removeDir = true
	}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	for _, d := range []string{"logs", "etcd", "podlogs"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	certs, err := newPKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("creating certificates: %w", err)
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, cmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	started := time.Now()

	fmt.Fprintf(progress, "==> starting etcd on 127.0.0.1:%d\n", etcdPort)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	if err := c.spawn("etcd", bins.Etcd,
		"--name=ductbot", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=ductbot="+peerURL, "--log-level=warn",
	); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, "etcd", func(ctx context.Context) error { return httpOK(ctx, etcdURL+"/health") }); err != nil {
		return nil, err
	}

	fmt.Fprintf(progress, "==> starting kube-apiserver %s on https://127.0.0.1:%d\n", KubernetesVersion, apiPort)
	if err := c.spawn("kube-apiserver", bins.APIServer,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(c.Dir, "pki"),
		"--tls-cert-file="+certs.ServingCert, "--tls-private-key-file="+certs.ServeKey,
		"--client-ca-file="+certs.CACert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+certs.SAPub, "--service-account-signing-key-file="+certs.SAKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=Node,RBAC",
		// Pods get no service-account token volume: nothing in a simulated
		// pod could read it, and it would race the creation of "default".
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		"--kubelet-client-certificate="+certs.AdminCert, "--kubelet-client-key="+certs.AdminKey,
		"--kubelet-preferred-address-types=InternalIP",
		"--enable-priority-and-fairness=false", "--profiling=false",
		// Streaming watch-lists need etcd's watch progress requests, which
		// Debian's etcd 3.4 lacks; clients fall back to list-and-watch.
		"--feature-gates=WatchList=false",
	); err != nil {
		return nil, err
	}
	if err := c.writeKubeconfig(apiPort, certs); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, "kube-apiserver", func(ctx context.Context) error {
		_, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}); err != nil {
		return nil, err
	}

	fmt.Fprintln(progress, "==> starting kube-controller-manager and kube-scheduler")
	if err := c.spawn("kube-controller-manager", bins.ControllerManager,
		"--kubeconfig="+c.Kubeconfig, "--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(cmPort),
		"--controllers=*,-serviceaccount-token", "--root-ca-file="+certs.CACert,
		"--cert-dir="+filepath.Join(c.Dir, "pki", "cm"),
	); err != nil {
		return nil, err
	}
	if err := c.spawn("kube-scheduler", bins.Scheduler,
		"--kubeconfig="+c.Kubeconfig, "--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--cert-dir="+filepath.Join(c.Dir, "pki", "sched"),
	); err != nil {
		return nil, err
	}

	fmt.Fprintf(progress, "==> starting kwok %s with node %s\n", KwokVersion, NodeName)
	if err := c.installLogsCRD(ctx); err != nil {
		return nil, err
	}
	stages := filepath.Join(c.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, stagesYAML, 0o644); err != nil {
		return nil, err
	}
	if err := c.spawn("kwok", bins.Kwok,
		"--kubeconfig="+c.Kubeconfig, "--config="+stages, "--enable-crds=Logs",
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--cidr=10.0.1.0/24", "--node-ip=127.0.0.1", "--node-port="+strconv.Itoa(kwokPort),
		"--server-address=127.0.0.1:"+strconv.Itoa(kwokPort),
		"--tls-cert-file="+certs.ServingCert, "--tls-private-key-file="+certs.ServeKey,
	); err != nil {
		return nil, err
	}
	if err := c.createNode(ctx); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, "node "+NodeName+" Ready", func(ctx context.Context) error {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("not Ready yet")
	}); err != nil {
		return nil, err
	}
	if err := c.startLogSimulator(); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "==> cluster ready in %s; kubeconfig: %s\n", time.Since(started).Round(100*time.Millisecond), c.Kubeconfig)
	return c, nil
}

// PIDs are the process IDs of everything the cluster started.
func (c *Cluster) PIDs() []int {
	var pids []int
	for _, p := range c.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	return pids
}

// Stop ends every process the cluster started (SIGTERM, then SIGKILL after
// ten seconds), waits for them, and removes the working folder when Start
// made it. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		if c.stopSim != nil {
			c.stopSim()
			<-c.simDone
		}
		var errs []error
		for i := len(c.procs) - 1; i >= 0; i-- {
			if err := c.procs[i].stop(10 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if c.removeDir {
			if err := os.RemoveAll(c.Dir); err != nil {
				errs = append(errs, err)
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

func (c *Cluster) spawn(name, bin string, args ...string) error {
	logPath := filepath.Join(c.Dir, "logs", name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = c.Dir
	// Own process group, so Stop can signal the whole tree; and killed if
	// this process dies, so a crashed test leaves nothing behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return nil
}

func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pgid)
	}
}

// waitFor polls check until it succeeds, the context ends, or a process the
// cluster started exits, and then names the culprit with its log's last lines.
func (c *Cluster) waitFor(ctx context.Context, what string, check func(context.Context) error) error {
	var last error
	for {
		for _, p := range c.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited while waiting for %s: %v\n%s", p.name, what, p.err, logTail(p.log))
			default:
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("timed out waiting for %s: %v", what, last)
			if len(c.procs) > 0 {
				p := c.procs[len(c.procs)-1]
				msg += fmt.Sprintf("\nlast lines of %s's log:\n%s", p.name, logTail(p.log))
			}
			return errors.New(msg)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) writeKubeconfig(port int, certs *pki) error {
	read := func(p string) []byte { b, _ := os.ReadFile(p); return b }
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["ductbot-local"] = &clientcmdapi.Cluster{
		Server:                   fmt.Sprintf("https://127.0.0.1:%d", port),
		CertificateAuthorityData: read(certs.CACert),
	}
	cfg.AuthInfos["ductbot-admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: read(certs.AdminCert),
		ClientKeyData:         read(certs.AdminKey),
	}
	cfg.Contexts["ductbot-local"] = &clientcmdapi.Context{Cluster: "ductbot-local", AuthInfo: "ductbot-admin", Namespace: "default"}
	cfg.CurrentContext = "ductbot-local"
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, c.Kubeconfig); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*cfg, "ductbot-local", &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = 200, 400
	c.RESTConfig = rc
	c.Client, err = kubernetes.NewForConfig(rc)
	return err
}

func (c *Cluster) installLogsCRD(ctx context.Context) error {
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal(logsCRDYAML, &obj.Object); err != nil {
		return fmt.Errorf("parsing the Logs CRD: %w", err)
	}
	dc, err := dynamic.NewForConfig(c.RESTConfig)
	if err != nil {
		return err
	}
	crds := dc.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, &obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the kwok Logs CRD: %w", err)
	}
	return c.waitFor(ctx, "the Logs CRD to be served", func(ctx context.Context) error {
		_, err := dc.Resource(logsGVR).Namespace("default").List(ctx, metav1.ListOptions{Limit: 1})
		return err
	})
}

func (c *Cluster) createNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"type": "kwok",
			},
		},
	}
	_, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating node %s: %w", NodeName, err)
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return text.LastLines(string(b), 15)
}
