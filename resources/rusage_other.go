//go:build !unix

package resources

import "errors"

// processCPUSeconds has no source outside Unix (getrusage): the CPU resource then
// reports no figures (and holds Normal).
func processCPUSeconds() (float64, error) {
	return 0, errors.New("resources: process cpu time not supported on this platform")
}
