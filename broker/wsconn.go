package broker

import (
	"errors"
	"io"
	"net"
	"sync"

	"github.com/gorilla/websocket"
)

// errTextFrame is returned when a WebSocket client sends a text frame:
// MQTT over WebSocket uses binary frames only.
var errTextFrame = errors.New("broker: websocket: text frame (MQTT needs binary frames)")

// wsConn presents a WebSocket as the byte stream mochi expects. MQTT packets
// may span frames and a frame may hold several packets, so reads continue
// across frame boundaries. Deadlines and Close act on the underlying
// connection.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // current frame, nil between frames

	wmu sync.Mutex // gorilla allows one concurrent writer
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // empty frame: read the next one
			}
			return n, nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
