package localcluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

var logsGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "logs"}

// startLogSimulator plays the part of a container runtime's log files: for
// every pod annotated with LogAnnotation it writes the annotation's lines in
// CRI log format and points a kwok Logs object at the file, so that
// `kubectl logs` and Helm's test-log collection read them through the API
// server and kwok's kubelet endpoint, as on a real node.
func (c *Cluster) startLogSimulator() error {
	dc, err := dynamic.NewForConfig(c.RESTConfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stopSim, c.simDone = cancel, make(chan struct{})
	factory := informers.NewSharedInformerFactory(c.Client, 0)
	pods := factory.Core().V1().Pods().Informer()
	seen := map[types.UID]bool{}
	work := make(chan *corev1.Pod, 256)
	handle := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || seen[pod.UID] || (pod.Annotations[LogAnnotation] == "" && !isTestHook(pod)) {
			return
		}
		seen[pod.UID] = true // informer handlers run one at a time
		work <- pod
	}
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	}); err != nil {
		cancel()
		return err
	}
	go func() {
		defer close(c.simDone)
		factory.Start(ctx.Done())
		for {
			select {
			case <-ctx.Done():
				factory.Shutdown()
				return
			case pod := <-work:
				if err := c.simulateLog(ctx, dc, pod); err != nil && ctx.Err() == nil {
					slog.Warn("local cluster: simulating a pod log failed", "namespace", pod.Namespace, "pod", pod.Name, "err", err)
				}
			}
		}
	}()
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), pods.HasSynced) {
		return fmt.Errorf("the pod log simulator could not list pods")
	}
	return nil
}

// isTestHook reports whether the pod is a `helm test` hook.
func isTestHook(pod *corev1.Pod) bool {
	h := pod.Annotations["helm.sh/hook"]
	return h == "test" || h == "test-success"
}

// simulateLog publishes the pod's log, then marks a test hook pod with
// logsReadyAnnotation: the kwok stages end a test pod only after that, so
// its log is always there when Helm asks for it, however loaded the machine.
func (c *Cluster) simulateLog(ctx context.Context, dc dynamic.Interface, pod *corev1.Pod) error {
	if pod.Annotations[LogAnnotation] != "" {
		if err := c.publishLog(ctx, dc, pod); err != nil {
			return err
		}
		// Give kwok's own watch of Logs objects time to see the new one.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	if !isTestHook(pod) {
		return nil
	}
	patch := []byte(`{"metadata":{"annotations":{"` + logsReadyAnnotation + `":"true"}}}`)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.Client.CoreV1().Pods(pod.Namespace).Patch(cctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// logsReadyAnnotation marks a test pod whose log the simulator published.
const logsReadyAnnotation = "sim.ductbot.dev/logs-ready"

func (c *Cluster) publishLog(ctx context.Context, dc dynamic.Interface, pod *corev1.Pod) error {
	path := filepath.Join(c.Dir, "podlogs", string(pod.UID)+".log")
	var b strings.Builder
	ts := pod.CreationTimestamp.UTC()
	for i, line := range strings.Split(strings.TrimRight(pod.Annotations[LogAnnotation], "\n"), "\n") {
		fmt.Fprintf(&b, "%s stdout F %s\n", ts.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), line)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return err
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Logs",
		"metadata":   map[string]any{"name": pod.Name, "namespace": pod.Namespace},
		// The same lines for the previous instance of a restarted
		// container (`kubectl logs --previous`).
		"spec": map[string]any{"logs": []any{map[string]any{"logsFile": path, "previousLogsFile": path}}},
	}}
	res := dc.Resource(logsGVR).Namespace(pod.Namespace)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := res.Create(cctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// A pod of the same name came before (a re-run test hook): repoint it.
		old, gerr := res.Get(cctx, pod.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		obj.SetResourceVersion(old.GetResourceVersion())
		_, err = res.Update(cctx, obj, metav1.UpdateOptions{})
	}
	return err
}
