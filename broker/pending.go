package broker

import (
	"net"
	"sync"
)

// Connections waiting for their CONNECT, per remote address.
//
// The connection cap (Limits.MaxClients plus connectionSlack) counts sockets
// from accept, before any CONNECT, so anyone who can reach the port could
// hold it full with idle sockets, renewed every connect_timeout, and lock
// every client out without credentials (found by the security audit). One
// address may hold at most maxPendingPerAddr sockets that have not sent
// their CONNECT yet; beyond that a new socket is closed at once. A CONNECT
// frees its slot, so a hundred sensors behind one NAT reconnecting at once
// after a restart still get in, while idle sockets from one address cannot
// fill max_clients (1000) plus its slack.
const maxPendingPerAddr = 128

type pendingConns struct {
	mu  sync.Mutex
	n   map[string]int
	max int // 0: maxPendingPerAddr (tests raise it)
}

func (p *pendingConns) setMax(n int) {
	p.mu.Lock()
	p.max = n
	p.mu.Unlock()
}

// acquire takes a slot for the remote address of c; ok is false when the
// address holds its maximum. release gives the slot back (idempotent).
func (p *pendingConns) acquire(c net.Conn) (release func(), ok bool) {
	addr := remoteHost(c)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == nil {
		p.n = make(map[string]int)
	}
	limit := p.max
	if limit == 0 {
		limit = maxPendingPerAddr
	}
	if p.n[addr] >= limit {
		return nil, false
	}
	p.n[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.n[addr]--; p.n[addr] <= 0 {
				delete(p.n, addr)
			}
		})
	}, true
}

func remoteHost(c net.Conn) string {
	a := c.RemoteAddr()
	if a == nil {
		return ""
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
