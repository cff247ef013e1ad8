//go:build unix

package resources

import "syscall"

// processCPUSeconds returns the user + system CPU time of the process. It is
// one getrusage(2) call; gopsutil's Process.Times instead parses
// /proc/self/stat and recomputes the boot time (reading /proc/stat) on every
// call, which is most of a sampling round's cost.
func processCPUSeconds() (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime), nil
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}
