//go:build !unix

package resources

import "errors"

// processCPUSeconds is not implemented outside Unix: the CPU resource then
// reports no figures (and holds Normal).
func processCPUSeconds() (float64, error) {
	return 0, errors.New("resources: process cpu time not supported on this platform")
}
