package fakehub

import (
	"embed"
	"io/fs"
	"net/http"
)

// The web console: a few static files (console/), embedded in the binary and served under
// /console/ on both HTTP listeners. It is plain HTML, CSS and JavaScript modules, with no
// build step, so that the hub stays a single Go binary with no node toolchain.
//
// The files need no authorisation and hold no secret. The page asks the operator for the
// service connection string, keeps it in the tab's sessionStorage, signs SAS tokens in the
// browser (WebCrypto HMAC-SHA256, protocol notes 1.4 and 1.5) and calls the same REST API
// as any other client, with the Authorization header. The live D2C view reads
// /fake/events/stream with fetch() and that header too, so no token ever travels in a URL
// and the server needs no special case for the console.
//
// WebCrypto only exists in a secure context: the console works over HTTPS, and over plain
// HTTP only from localhost or 127.0.0.1. It says so when it cannot sign.

//go:embed console
var consoleFiles embed.FS

// consolePrefix is where the console is mounted; index.html refers to its assets relatively.
const consolePrefix = "/console"

// consoleHandler serves the embedded files. fs.Sub cannot fail for a directory that
// go:embed has just checked exists.
var consoleHandler = func() http.Handler {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic("fakehub: embedded console files: " + err.Error())
	}
	return http.StripPrefix(consolePrefix, http.FileServerFS(sub))
}()

// consoleSecurityPolicy keeps the page to its own origin: scripts, styles and API calls
// come from the hub itself, and no other site may frame it (the page handles a key).
const consoleSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// console serves GET /console/ and its assets.
func (a *restAPI) console(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", consoleSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// The files change only with the binary; no-cache makes a restarted hub's browser tab
	// revalidate instead of mixing old and new modules.
	h.Set("Cache-Control", "no-cache")
	consoleHandler.ServeHTTP(w, r)
}
