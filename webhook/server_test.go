package webhook

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A client that trickles its body is cut off at the read deadline, and one that sends too much is refused, before
// the handler holds either for long.
func TestBoundedBody(t *testing.T) {
	h := newHandlers(t)
	srv := httptest.NewServer(bounded(h.validating, 64<<10, 300*time.Millisecond))
	defer srv.Close()

	t.Run("trickle", func(t *testing.T) {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		start := time.Now()
		if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		closed := make(chan time.Duration, 1)
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := conn.Read(buf); err != nil {
					closed <- time.Since(start)
					return
				}
			}
		}()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case took := <-closed:
				if took > 5*time.Second {
					t.Errorf("a trickling client held the connection %s", took)
				}
				return
			case <-tick.C:
				if _, err := io.WriteString(conn, " "); err != nil {
					return // closed by the server
				}
				if time.Since(start) > 5*time.Second {
					t.Fatal("a client trickling one byte each 50 ms still holds its connection after 5 s")
				}
			}
		}
	})

	t.Run("too large", func(t *testing.T) {
		body := review(t, "CREATE", deploymentGVK, []byte(`{"metadata":{"name":"`+strings.Repeat("x", 100<<10)+`"}}`), nil)
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && !strings.Contains(string(out), "too large") {
			t.Errorf("a %d-byte body was read: %d %s", len(body), resp.StatusCode, out)
		}
	})
}
