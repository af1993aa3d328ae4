// Package deploy holds how ductbot itself is run: the Helm chart in
// deploy/chart/ductbot and, in its tests, the checks that the chart lints,
// renders what operators rely on, installs on a real API server with RBAC
// that is enough for ductbot and no more, and that the Dockerfile at the
// repository root keeps its invariants. It has no Go API.
package deploy
