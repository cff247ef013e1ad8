package broker

import "strings"

// validFilter reports whether filter is a well-formed MQTT topic filter for a
// handler: non-empty, '#' only as the whole last level, '+' only as a whole
// level [MQTT-4.7.1-2] [MQTT-4.7.1-3], and no shared-subscription prefix.
func validFilter(filter string) bool {
	if filter == "" || strings.ContainsRune(filter, 0) {
		return false
	}
	if hasSharePrefix(filter) {
		return false
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return false
			}
		case l == "+":
		case strings.ContainsAny(l, "+#"):
			return false
		}
	}
	return true
}

// validSubscription reports whether filter may be subscribed to:
// validFilter, or a shared subscription $share/<group>/<filter> whose group
// is non-empty and free of wildcards [MQTT-4.8.2-1] [MQTT-4.8.2-2]. mochi
// itself accepts x/a# and a+/b, which then match nothing.
func validSubscription(filter string) bool {
	if inner, ok := sharedFilter(filter); ok {
		return validFilter(inner)
	}
	return validFilter(filter) // refuses a $share/ without a group or filter
}

// sharePrefix starts a shared subscription; mochi recognises it in any
// case (IsSharedFilter).
const sharePrefix = "$share/"

// sharedFilter returns the filter of a shared subscription
// $share/<group>/<filter> whose group is non-empty and free of wildcards.
func sharedFilter(filter string) (string, bool) {
	if !hasSharePrefix(filter) {
		return "", false
	}
	group, f, found := strings.Cut(filter[len(sharePrefix):], "/")
	if !found || group == "" || strings.ContainsAny(group, "+#") {
		return "", false
	}
	return f, true
}

func hasSharePrefix(filter string) bool {
	return len(filter) >= len(sharePrefix) && strings.EqualFold(filter[:len(sharePrefix)], sharePrefix)
}

// matchTopic reports whether topic matches filter. A filter starting with a
// wildcard does not match a topic starting with '$' [MQTT-4.7.2-1].
func matchTopic(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	return matchLevels(filter, topic)
}

// matchLevels is matchTopic without the '$' rule.
func matchLevels(filter, topic string) bool {
	for {
		if filter == "#" {
			return true
		}
		fl, frest, fmore := strings.Cut(filter, "/")
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			// "a/#" also matches "a" [MQTT-4.7.1-2].
			return fl == "#"
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}
