package resources

import "os"

// rssReader reads the resident set size from /proc/self/statm (second field,
// in pages). gopsutil's process package would do the same but pulls in
// modules the project does not require; this is one small read into a reused
// buffer.
type rssReader struct {
	path string
	buf  []byte
	page int64
}

func newRSSReader() *rssReader {
	return &rssReader{path: "/proc/self/statm", buf: make([]byte, 128), page: int64(os.Getpagesize())}
}

func (r *rssReader) read(goRuntime int64) (int64, error) {
	data, err := readSmall(r.path, r.buf)
	if err != nil {
		return 0, err
	}
	return parseStatm(data, r.page)
}
