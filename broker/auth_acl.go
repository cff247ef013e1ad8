package broker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ACL files are mosquitto's acl_file format:
//
//	# anonymous clients (rules before the first "user" line)
//	topic read public/#
//	user alice
//	topic readwrite sensors/alice/#
//	topic deny sensors/alice/secret
//	pattern write devices/%c/state
//	pattern read  devices/%u/#
//
// "topic [read|write|readwrite|deny] FILTER" (readwrite when the access is
// left out) grants the clients of the current section: anonymous clients
// before any "user" line, that user after it. "pattern" lines apply to every
// client, with %u replaced by its user name and %c by its client id (a
// pattern using %u never matches an anonymous client, and one whose
// substituted id contains '/', '+' or '#' never matches at all, so an id
// cannot widen a grant). The filter is the rest of the line and may contain
// spaces.
//
// A check (client, topic, access) is decided as mosquitto decides it: the
// rules of the client's section first, then the patterns; in each, deny rules
// before grants; the first rule that matches decides; nothing matching
// denies. A rule whose filter starts with a wildcard never matches a topic
// starting with '$' [MQTT-4.7.2-1]. Topics under a protected prefix (the
// command topic, <prefix>/sync and <prefix>/status) are only matched by
// rules that spell the whole prefix out without wildcards: "topic readwrite
// #" or "$ferrite/#" grant neither commands nor sync topics,
// "topic write $ferrite/cmd" and "pattern readwrite $ferrite/sync/%u/#" do.
//
// Subscriptions are checked as filters: a subscription is allowed when a read
// rule can match some topic it covers and no deny rule decided first covers
// all of them. Each message delivered is then checked again as a topic, so a
// subscription to '#' receives only what its client may read (mosquitto does
// the same).

// Access bits of an ACL rule.
const (
	aclDeny      = 0
	aclRead      = 1
	aclWrite     = 2
	aclReadWrite = aclRead | aclWrite
)

// ErrBadACLFile wraps every error in an ACL file's content.
var ErrBadACLFile = errors.New("broker: bad acl file")

// aclLevel is one level of a rule's filter.
type aclLevel struct {
	text     string
	wildcard byte // '+', '#' or 0
	template bool // contains %u or %c (pattern rules only)
}

type aclRule struct {
	filter     string
	levels     []aclLevel
	access     int
	usesUser   bool
	usesClient bool
	line       int
}

// ACL is a parsed acl_file. It is immutable and safe for concurrent use.
type ACL struct {
	anonymous []aclRule
	users     map[string][]aclRule
	patterns  []aclRule
	protected [][]string // topic prefixes (split) only rules naming them can match
}

// LoadACLFile reads and parses the ACL file at path.
func LoadACLFile(path string) (*ACL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("broker: acl file: %w", err)
	}
	defer f.Close()
	a, err := ParseACL(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ParseACL parses an ACL file. Every malformed line is reported with its
// number: an unknown keyword, a bad access or an invalid topic filter.
func ParseACL(r io.Reader) (*ACL, error) {
	a := &ACL{users: make(map[string][]aclRule)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), passwdMaxLine)
	var errs []error
	var user *string // nil: the anonymous section
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		kw, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(kw, '\t'); i >= 0 {
			kw, rest = line[:i], line[i+1:]
		}
		rest = strings.TrimSpace(rest)
		switch kw {
		case "user":
			if rest == "" {
				errs = append(errs, fmt.Errorf("line %d: user needs a name", n))
				continue
			}
			u := rest
			user = &u
			if _, ok := a.users[u]; !ok {
				a.users[u] = nil
			}
		case "topic", "pattern":
			rule, err := parseACLRule(rest, kw == "pattern", n)
			if err != nil {
				errs = append(errs, fmt.Errorf("line %d: %w", n, err))
				continue
			}
			switch {
			case kw == "pattern":
				a.patterns = addACLRule(a.patterns, rule)
			case user == nil:
				a.anonymous = addACLRule(a.anonymous, rule)
			default:
				a.users[*user] = addACLRule(a.users[*user], rule)
			}
		default:
			errs = append(errs, fmt.Errorf("line %d: unknown keyword %q (want user, topic or pattern)", n, kw))
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrBadACLFile, errors.Join(errs...))
	}
	return a, nil
}

// addACLRule keeps deny rules ahead of grants (mosquitto checks denials
// first), each group in file order.
func addACLRule(rules []aclRule, r aclRule) []aclRule {
	if r.access != aclDeny {
		return append(rules, r)
	}
	i := 0
	for i < len(rules) && rules[i].access == aclDeny {
		i++
	}
	rules = append(rules, aclRule{})
	copy(rules[i+1:], rules[i:])
	rules[i] = r
	return rules
}

func parseACLRule(s string, pattern bool, line int) (aclRule, error) {
	r := aclRule{access: aclReadWrite, line: line}
	if kw, rest, _ := cutField(s); rest != "" {
		var access int
		switch kw {
		case "read":
			access = aclRead
		case "write":
			access = aclWrite
		case "readwrite":
			access = aclReadWrite
		case "deny":
			access = aclDeny
		default:
			// As mosquitto: with two or more words the first is the
			// access, so a typo ("reed", "dney") is an error, not a
			// readwrite rule on a filter with a space in it.
			return r, fmt.Errorf("invalid access %q (want read, write, readwrite or deny)", kw)
		}
		r.access, s = access, rest
	}
	switch s {
	case "", "read", "write", "readwrite", "deny":
		return r, errors.New("missing topic filter")
	}
	if !validFilter(s) {
		return r, fmt.Errorf("invalid topic filter %q", s)
	}
	r.filter = s
	for l := range strings.SplitSeq(s, "/") {
		lv := aclLevel{text: l}
		switch l {
		case "+", "#":
			lv.wildcard = l[0]
		default:
			if pattern && (strings.Contains(l, "%u") || strings.Contains(l, "%c")) {
				lv.template = true
				r.usesUser = r.usesUser || strings.Contains(l, "%u")
				r.usesClient = r.usesClient || strings.Contains(l, "%c")
			}
		}
		r.levels = append(r.levels, lv)
	}
	return r, nil
}

// cutField splits off the first blank-separated field.
func cutField(s string) (field, rest string, ok bool) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", true
	}
	return s[:i], strings.TrimSpace(s[i+1:]), true
}

// withProtected returns a copy of a whose rules only match topics under the
// given prefixes ("$ferrite/cmd", "acme/sync") when they spell the prefix
// out without wildcards.
func (a *ACL) withProtected(prefixes []string) *ACL {
	c := *a
	c.protected = nil
	for _, p := range prefixes {
		if p != "" {
			c.protected = append(c.protected, strings.Split(p, "/"))
		}
	}
	return &c
}

// protectedDepth is the number of levels of the longest protected prefix
// that topic (or a filter, literally) starts with; 1 for '$' topics; 0 if
// none.
func (a *ACL) protectedDepth(topic string) int {
	d := 0
	if strings.HasPrefix(topic, "$") {
		d = 1
	}
	for _, p := range a.protected {
		if len(p) > d && hasLevels(topic, p) {
			d = len(p)
		}
	}
	return d
}

// hasLevels reports whether topic's first levels are exactly prefix.
func hasLevels(topic string, prefix []string) bool {
	for _, l := range prefix {
		tl, rest, more := strings.Cut(topic, "/")
		if tl != l {
			return false
		}
		if !more {
			topic = ""
			continue
		}
		topic = rest
	}
	return true
}

// Users lists the users that have a section.
func (a *ACL) Users() []string {
	out := make([]string, 0, len(a.users))
	for u := range a.users {
		out = append(out, u)
	}
	return out
}

// aclSubject is who a check is for: the verified user name ("" for
// anonymous) and the client id.
type aclSubject struct {
	user      string
	anonymous bool
	clientID  string
}

// Check reports whether the subject may access topic (a topic name, or for
// reads a subscription filter). write selects write access, else read.
func (a *ACL) check(s aclSubject, topic string, write bool) bool {
	want := aclRead
	if write {
		want = aclWrite
	}
	topic = stripShare(topic)
	var q aclQuery
	q.topic = topic
	q.filter = strings.ContainsAny(topic, "+#")
	if q.filter {
		q.levels = strings.Split(topic, "/")
	}
	q.protected = a.protectedDepth(topic)
	rules := a.anonymous
	if !s.anonymous {
		rules = a.users[s.user]
	}
	if d, ok := decide(rules, &q, s, want); ok {
		return d
	}
	if d, ok := decide(a.patterns, &q, s, want); ok {
		return d
	}
	return false
}

// aclQuery is a topic (or filter) being checked, pre-analysed once.
type aclQuery struct {
	topic     string
	levels    []string // split, only for filters
	filter    bool
	protected int // leading levels a rule must spell out literally
}

// decide returns the verdict of the first rule of rules that matches q
// (deny rules come first), ok=false if none does.
func decide(rules []aclRule, q *aclQuery, s aclSubject, want int) (allowed, ok bool) {
	for i := range rules {
		r := &rules[i]
		if r.access != aclDeny && r.access&want == 0 {
			continue
		}
		if (r.usesUser && (s.anonymous || badSubstitution(s.user))) ||
			(r.usesClient && badSubstitution(s.clientID)) {
			continue
		}
		if !literalPrefix(r.levels, q.protected) {
			continue
		}
		if r.access == aclDeny {
			if q.filter {
				if covers(r.levels, q.levels, s) {
					return false, true
				}
				continue
			}
			if matchRule(r.levels, q.topic, s) {
				return false, true
			}
			continue
		}
		if q.filter {
			if intersects(r.levels, q.levels, s) {
				return true, true
			}
			continue
		}
		if matchRule(r.levels, q.topic, s) {
			return true, true
		}
	}
	return false, false
}

// literalPrefix reports whether the first n levels of a rule are no
// wildcards (a rule shorter than n cannot reach that deep literally).
func literalPrefix(levels []aclLevel, n int) bool {
	if n > len(levels) {
		return false
	}
	for i := range n {
		if levels[i].wildcard != 0 {
			return false
		}
	}
	return true
}

// badSubstitution reports an id that would change a pattern's structure.
func badSubstitution(id string) bool {
	return id == "" || strings.ContainsAny(id, "/+#\x00")
}

// stripShare turns "$share/group/filter" into "filter".
func stripShare(f string) string {
	if len(f) > 7 && strings.EqualFold(f[:7], "$share/") {
		if _, rest, ok := strings.Cut(f[7:], "/"); ok {
			return rest
		}
	}
	return f
}

// levelEquals compares a rule level (literal or %u/%c template) with a
// literal topic level, without allocating.
func levelEquals(l *aclLevel, topic string, s aclSubject) bool {
	if !l.template {
		return l.text == topic
	}
	t := l.text
	for t != "" {
		i := strings.IndexByte(t, '%')
		if i < 0 || i+1 >= len(t) || (t[i+1] != 'u' && t[i+1] != 'c') {
			if i < 0 || i+1 >= len(t) {
				return t == topic
			}
			// A '%' that is not %u/%c is literal.
			if !strings.HasPrefix(topic, t[:i+1]) {
				return false
			}
			topic, t = topic[i+1:], t[i+1:]
			continue
		}
		if !strings.HasPrefix(topic, t[:i]) {
			return false
		}
		topic = topic[i:]
		v := s.user
		if t[i+1] == 'c' {
			v = s.clientID
		}
		if !strings.HasPrefix(topic, v) {
			return false
		}
		topic, t = topic[len(v):], t[i+2:]
	}
	return topic == ""
}

// matchRule reports whether the rule's filter matches a topic name.
func matchRule(levels []aclLevel, topic string, s aclSubject) bool {
	for i := range levels {
		l := &levels[i]
		if l.wildcard == '#' {
			return true // also matches the parent level [MQTT-4.7.1-2]
		}
		tl, rest, more := strings.Cut(topic, "/")
		if l.wildcard != '+' && !levelEquals(l, tl, s) {
			return false
		}
		if !more {
			// The topic ends here: the rule must end too, or go on with "#".
			return i == len(levels)-1 || (i == len(levels)-2 && levels[i+1].wildcard == '#')
		}
		topic = rest
	}
	return false // the topic has more levels than the rule
}

// intersects reports whether some topic matches both the rule and filter f.
func intersects(levels []aclLevel, f []string, s aclSubject) bool {
	i := 0
	for ; i < len(levels) && i < len(f); i++ {
		l := &levels[i]
		if l.wildcard == '#' || f[i] == "#" {
			return true
		}
		if l.wildcard == '+' || f[i] == "+" {
			continue
		}
		if !levelEquals(l, f[i], s) {
			return false
		}
	}
	switch {
	case i == len(levels) && i == len(f):
		return true
	case i == len(levels):
		return f[i] == "#" // "a/#" also matches "a"
	default:
		return levels[i].wildcard == '#'
	}
}

// covers reports whether the rule matches every topic filter f matches.
func covers(levels []aclLevel, f []string, s aclSubject) bool {
	i := 0
	for ; i < len(levels) && i < len(f); i++ {
		l := &levels[i]
		switch {
		case l.wildcard == '#':
			return true
		case f[i] == "#":
			return false
		case l.wildcard == '+':
			continue
		case f[i] == "+":
			return false
		case !levelEquals(l, f[i], s):
			return false
		}
	}
	switch {
	case i == len(levels) && i == len(f):
		return true
	case i == len(f):
		return levels[i].wildcard == '#' && i == len(levels)-1
	default:
		return false // f goes deeper than the rule
	}
}
