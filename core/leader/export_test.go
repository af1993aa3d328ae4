package leader

// WaitFor is waitFor, for the process tests in package leader_test.
var WaitFor = waitFor
