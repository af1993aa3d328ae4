package k8s

// SetOnLocked makes c call f with "namespace/release" whenever an operation
// on a release acquires the release's lock. Set it before c is used.
func SetOnLocked(c *Client, f func(key string)) { c.onLocked = f }
