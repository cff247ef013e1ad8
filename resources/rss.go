package resources

import (
	"bytes"
	"fmt"
	"strconv"
)

// parseStatm returns the resident pages (second field) times the page size.
func parseStatm(data []byte, page int64) (int64, error) {
	fields := bytes.Fields(data)
	if len(fields) < 2 {
		return 0, fmt.Errorf("resources: statm: %d fields", len(fields))
	}
	pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil || pages < 0 || pages > (1<<62)/max(page, 1) {
		return 0, fmt.Errorf("resources: statm: bad resident pages %q", fields[1])
	}
	return pages * page, nil
}
