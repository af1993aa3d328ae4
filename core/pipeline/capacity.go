package pipeline

import "github.com/ductbot/ductbot/core/run"

// Admit decides whether a queued run may start under kubernetes.max_envs:
// an environment that already has objects in the cluster always may (it is
// counted already); a new one only while fewer than max environments are in
// the cluster. max 0 means no cap. inCluster is the number of environments
// in the cluster now, this one included if it is there.
func Admit(status run.EnvStatus, inCluster, max int) bool {
	return max <= 0 || status.InCluster() || inCluster < max
}
