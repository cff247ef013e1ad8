package ferrite

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// validAddr reports a listen address that is not host:port ("" is allowed).
func validAddr(s section, key, addr string) {
	if addr == "" {
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		s.add(key, "invalid address %q (want host:port or :port)", addr)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		s.add(key, "invalid port %q in %q", port, addr)
	}
}

func durationRange(s section, key string, d Duration, lo, hi time.Duration) {
	if d.D() < lo || d.D() > hi {
		s.add(key, "%s out of range [%s, %s]", d, fmtDuration(lo), fmtDuration(hi))
	}
}

func fmtDuration(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour) // as it is written ("1d" is not a duration)
	}
	return d.String()
}

// validTopicName reports whether t can be published to: not empty, no
// wildcards, no NUL, at most 65535 bytes [MQTT-4.7.3-1] [MQTT-4.7.3-2].
func validTopicName(t string) bool {
	return t != "" && len(t) <= 65535 && !strings.ContainsAny(t, "+#\x00")
}
