package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
)

// CSRF protection, two layers: http.CrossOriginProtection rejects
// cross-origin browser requests (Sec-Fetch-Site, Origin), and every form
// carries a token, the HMAC of a random cookie under the console's key, so
// that a request without a page the console rendered for this browser is
// refused (a planted cookie is useless without the key).

const (
	csrfCookie = "wharf_console_csrf"
	csrfField  = "csrf"
)

var errCSRF = errors.New("the form's CSRF token is missing or stale: reload the page and try again")

// csrfToken returns the token of r's browser, setting its cookie first
// when it has none.
func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) >= 32 {
		return c.sign(ck.Value)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: v, Path: c.base(r) + "/", HttpOnly: true, Secure: r.TLS != nil || c.opts.SecureCookies,
		SameSite: http.SameSiteStrictMode,
	})
	return c.sign(v)
}

func (c *Console) sign(v string) string {
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte("wharf console csrf\x00"))
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF verifies a state-changing request: same origin, and the token
// of its cookie in the form.
func (c *Console) checkCSRF(r *http.Request) error {
	if err := c.origin.Check(r); err != nil {
		return err
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil || len(ck.Value) < 32 {
		return errCSRF
	}
	got, err := base64.RawURLEncoding.DecodeString(r.PostFormValue(csrfField))
	if err != nil {
		return errCSRF
	}
	want, _ := base64.RawURLEncoding.DecodeString(c.sign(ck.Value))
	if !hmac.Equal(got, want) {
		return errCSRF
	}
	return nil
}
