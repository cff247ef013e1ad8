package broker

import (
	"errors"
	"strings"
	"testing"
)

const testACL = `
# anonymous clients
topic read public/#

user alice
topic readwrite sensors/alice/#
topic deny sensors/alice/secret
topic read $ferrite/status/#
topic write $ferrite/cmd

user bob with spaces
topic sensors/bob/#

user admin
topic readwrite #
topic readwrite $ferrite/#
topic deny private/#

user edge-001
topic readwrite acme/sync/edge-001/#

pattern write devices/%c/state
pattern read devices/%u/config/#
pattern readwrite d/pre-%u-post/x
`

func TestACLCheck(t *testing.T) {
	a, err := ParseACL(strings.NewReader(testACL))
	if err != nil {
		t.Fatal(err)
	}
	a = a.withProtected([]string{"$ferrite/cmd", "acme/sync", "acme/status"})
	alice := aclSubject{user: "alice", clientID: "c-alice"}
	anon := aclSubject{anonymous: true, clientID: "anon1"}
	admin := aclSubject{user: "admin", clientID: "adm"}
	cases := []struct {
		who   aclSubject
		topic string
		write bool
		ok    bool
	}{
		{anon, "public/x", false, true},
		{anon, "public/x", true, false},
		{anon, "public", false, true}, // "public/#" matches its parent
		{anon, "sensors/alice/t", false, false},
		{anon, "#", false, true}, // intersects public/#: deliveries are checked one by one
		{alice, "sensors/alice/t", true, true},
		{alice, "sensors/alice/t", false, true},
		{alice, "sensors/alice/secret", true, false},
		{alice, "sensors/alice/secret", false, false},
		{alice, "sensors/alice/#", false, true}, // intersects the grant, deliveries re-checked
		{alice, "sensors/alice/secret/x", false, true},
		{alice, "sensors/bob/t", false, false},
		{alice, "sensors/+/t", false, true}, // intersects sensors/alice/#
		{alice, "public/x", false, false},   // anonymous rules are not alice's
		{alice, "$ferrite/cmd", true, true},
		{alice, "$ferrite/cmd", false, false},
		{alice, "$ferrite/status/hub", false, true},
		{alice, "$ferrite/status/hub", true, false},
		{alice, "devices/c-alice/state", true, true}, // %c
		{alice, "devices/other/state", true, false},
		{alice, "devices/alice/config/x", false, true}, // %u
		{alice, "devices/alice/config/x", true, false},
		{alice, "d/pre-alice-post/x", true, true},
		{alice, "d/pre-bob-post/x", true, false},
		{anon, "devices/anon1/state", true, true}, // %c applies to anonymous clients
		{anon, "devices//config/x", false, false}, // %u never matches an anonymous client
		{aclSubject{user: "bob with spaces", clientID: "b"}, "sensors/bob/x", true, true},
		{admin, "anything/at/all", true, true},
		{admin, "#", false, true},
		{admin, "private/x", false, false},
		{admin, "private/#", false, false}, // covered by the deny
		{admin, "private/+/x", false, false},
		{admin, "$SYS/broker/uptime", false, false}, // '#' does not reach '$' topics
		{admin, "$ferrite/cmd", true, false},        // "$ferrite/#" does not spell the command topic out
		{admin, "$ferrite/other", true, true},
		{admin, "acme/sync/edge-001/up", true, false}, // '#' does not reach a protected prefix
		{admin, "acme/sync/#", false, false},
		{admin, "acme/other", true, true},
		{admin, "acme/+/x", false, true}, // deliveries of acme/sync/x are refused one by one
		{aclSubject{user: "admin", clientID: "adm"}, "acme/sync/x", false, false},
		{aclSubject{user: "edge-001", clientID: "e"}, "acme/sync/edge-001/up", true, true},
		{aclSubject{user: "edge-001", clientID: "e"}, "acme/sync/edge-002/up", true, false},
		{aclSubject{user: "nobody", clientID: "n"}, "public/x", false, false},
		// A client id that would widen the grant matches no pattern.
		{aclSubject{user: "x", clientID: "a/b"}, "devices/a/b/state", true, false},
		{aclSubject{user: "x", clientID: "+"}, "devices/+/state", true, false},
		{aclSubject{user: "x/y", clientID: "c"}, "devices/x/y/config/1", false, false},
		// Shared subscriptions are checked on their filter.
		{alice, "$share/g/sensors/alice/#", false, true},
		{alice, "$share/g/sensors/bob/#", false, false},
	}
	for _, c := range cases {
		if got := a.check(c.who, c.topic, c.write); got != c.ok {
			t.Errorf("%s %q write=%v: got %v, want %v", c.who.user, c.topic, c.write, got, c.ok)
		}
	}
}

func TestACLFilterRelations(t *testing.T) {
	s := aclSubject{user: "u", clientID: "c"}
	cases := []struct {
		rule, filter string
		intersects   bool
		covers       bool
	}{
		{"a/#", "a", true, true},
		{"a/#", "a/b/c", true, true},
		{"a/#", "#", true, false},
		{"a/+", "a/#", true, false},
		{"a/+", "a/b", true, true},
		{"a/+", "a/+", true, true},
		{"a/b", "a/+", true, false},
		{"a/b", "a/c", false, false},
		{"+/b", "a/+", true, false},
		{"a/b", "a/b/#", true, false},
		{"a/b/c", "a/#", true, false},
		{"#", "x/#", true, true},
		{"a", "a/b", false, false},
		{"a/+/c", "a/b", false, false},
	}
	for _, c := range cases {
		r, err := parseACLRule(c.rule, false, 1)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Split(c.filter, "/")
		if got := intersects(r.levels, f, s); got != c.intersects {
			t.Errorf("intersects(%q, %q) = %v", c.rule, c.filter, got)
		}
		if got := covers(r.levels, f, s); got != c.covers {
			t.Errorf("covers(%q, %q) = %v", c.rule, c.filter, got)
		}
	}
}

func TestParseACLErrors(t *testing.T) {
	for name, in := range map[string]string{
		"keyword":      "topics read a\n",
		"filter":       "topic read a/#/b\n",
		"empty":        "topic read\n",
		"user no name": "user\n",
		"bad plus":     "pattern write a+/b\n",
		"access typo":  "topic reed sensors/#\n",
		"deny typo":    "topic dney secret/#\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseACL(strings.NewReader("# x\n" + in))
			if !errors.Is(err, ErrBadACLFile) || !strings.Contains(err.Error(), "line 2") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// "topic FILTER" without an access keyword is readwrite, like mosquitto.
	a, err := ParseACL(strings.NewReader("topic a/b\n"))
	if err != nil || !a.check(aclSubject{anonymous: true, clientID: "c"}, "a/b", true) {
		t.Fatalf("default access: %v", err)
	}
}

func BenchmarkACLCheckDelivery(b *testing.B) {
	a, err := ParseACL(strings.NewReader(testACL))
	if err != nil {
		b.Fatal(err)
	}
	s := aclSubject{user: "alice", clientID: "c-alice"}
	b.ReportAllocs()
	for b.Loop() {
		if !a.check(s, "devices/alice/config/temp", false) {
			b.Fatal("denied")
		}
	}
}

func FuzzParseACL(f *testing.F) {
	f.Add([]byte(testACL), "sensors/alice/t", "alice", "c")
	f.Add([]byte("pattern readwrite %u/%c/#\n"), "u/c/x", "u", "c")
	f.Add([]byte("topic deny #\ntopic read +/+\n"), "a/+", "", "c")
	f.Fuzz(func(t *testing.T, data []byte, topic, user, client string) {
		a, err := ParseACL(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		s := aclSubject{user: user, anonymous: user == "", clientID: client}
		_ = a.check(s, topic, true)
		r := a.check(s, topic, false)
		// A topic name is a filter matching itself: subscribing to it
		// follows the same verdict as delivering it.
		if topic != "" && !strings.ContainsAny(topic, "+#") && validFilter(topic) {
			if r != a.check(s, topic, false) {
				t.Fatal("non-deterministic")
			}
		}
	})
}
