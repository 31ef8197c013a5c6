package hub_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/runtime/hub"
)

// TestSecurity_MethodAPIClosesIdleConnections (finding F3): a caller without credentials
// makes one request (answered 400) and then keeps its keep-alive connection idle. The
// method API's http.Server has ReadHeaderTimeout but no IdleTimeout (nor ReadTimeout), so
// net/http waits for the next request with no deadline: the socket, its TLS state and a
// goroutine are held for ever, and nothing bounds how many such sockets there are. The
// idle timeout (2 minutes in production) is shortened to a second here.
func TestSecurity_MethodAPIClosesIdleConnections(t *testing.T) {
	hub.SetMethodIdleTimeout(t, time.Second)
	r, hc, _ := methodAPI(t, nil)
	conn, err := tls.Dial("tcp", r.hub.HTTPSAddr(), hc.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /twins/edge1/modules/modA/methods HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second)) // > the idle timeout and methodHeaderTimeout (10 s)
	_, err = br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("status %d, then the idle connection was still open 15 s later", resp.StatusCode)
	}
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d for a request without credentials, want 400 or 401", resp.StatusCode)
	}
}
