package httpidempotency

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/wharf-go/wharf/core"
)

// Fingerprint identifies a request for the Idempotency-Key check: a hash
// (core.Fingerprint) of its method, escaped path, raw query and body. It is
// the default Options.Fingerprint.
//
// A JSON body (Content-Type application/json or a +json type) is compared
// as canonical JSON, in the spirit of RFC 8785: object members sorted by
// name, no insignificant white space, strings in one escaping, so that
// {"title":"a"} and { "title": "a" } are the same request. Numbers are kept
// as written (1 and 1.0 differ), so two different large integers never
// compare equal through rounding. A JSON body that is not a single valid
// value, holds invalid UTF-8, a UTF-16 surrogate escape (\ud800) or a name
// twice, and every other body, is compared byte for byte (as
// ExactFingerprint does). A canonical fingerprint never equals a byte for
// byte one, so a body sent once as JSON and once as text/plain differs.
func Fingerprint(r *http.Request, body []byte) string {
	if isJSON(r.Header.Get("Content-Type")) {
		if c, ok := canonicalJSON(body); ok {
			return core.Fingerprint([]byte(r.Method), []byte(r.URL.EscapedPath()), []byte(r.URL.RawQuery), []byte("json"), c)
		}
	}
	return ExactFingerprint(r, body)
}

// ExactFingerprint is a Fingerprint that compares every body byte for byte:
// a client must resend exactly the same bytes when it retries. Set it as
// Options.Fingerprint to turn the JSON canonicalisation off.
func ExactFingerprint(r *http.Request, body []byte) string {
	return core.Fingerprint([]byte(r.Method), []byte(r.URL.EscapedPath()), []byte(r.URL.RawQuery), body)
}

// isJSON reports whether a Content-Type value names JSON.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// canonicalJSON returns the canonical form of body, or false when body is
// not one JSON value that canonicalises safely (see Fingerprint).
func canonicalJSON(body []byte) ([]byte, bool) {
	if !utf8.Valid(body) || hasSurrogateEscape(body) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var out bytes.Buffer
	if err := canonicalValue(dec, &out); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false // trailing data
	}
	return out.Bytes(), true
}

// errNotCanonical stops canonicalisation: the body is compared as bytes.
var errNotCanonical = errors.New("not canonicalisable")

// canonicalValue writes the canonical form of the next value of dec.
func canonicalValue(dec *json.Decoder, out *bytes.Buffer) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return canonicalObject(dec, out)
		case '[':
			out.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				if err := canonicalValue(dec, out); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return err
			}
			out.WriteByte(']')
			return nil
		}
		return errNotCanonical
	case string:
		writeString(out, v)
	case json.Number:
		out.WriteString(string(v))
	case bool:
		if v {
			out.WriteString("true")
		} else {
			out.WriteString("false")
		}
	case nil:
		out.WriteString("null")
	default:
		return errNotCanonical
	}
	return nil
}

// canonicalObject writes an object, whose '{' was read, with its members
// sorted by name. A name given twice is errNotCanonical: decoders disagree
// on which value wins.
func canonicalObject(dec *json.Decoder, out *bytes.Buffer) error {
	type member struct {
		name  string
		value []byte
	}
	var members []member
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, ok := tok.(string)
		if !ok || seen[name] {
			return errNotCanonical
		}
		seen[name] = true
		var v bytes.Buffer
		if err := canonicalValue(dec, &v); err != nil {
			return err
		}
		members = append(members, member{name, v.Bytes()})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return err
	}
	sort.Slice(members, func(i, j int) bool { return members[i].name < members[j].name })
	out.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			out.WriteByte(',')
		}
		writeString(out, m.name)
		out.WriteByte(':')
		out.Write(m.value)
	}
	out.WriteByte('}')
	return nil
}

// writeString writes s as a JSON string, escaping only what JSON requires
// (RFC 8785 section 3.2.2.2).
func writeString(out *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	out.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			out.WriteByte('\\')
			out.WriteByte(c)
		case c == '\b':
			out.WriteString(`\b`)
		case c == '\f':
			out.WriteString(`\f`)
		case c == '\n':
			out.WriteString(`\n`)
		case c == '\r':
			out.WriteString(`\r`)
		case c == '\t':
			out.WriteString(`\t`)
		case c < 0x20:
			out.WriteString(`\u00`)
			out.WriteByte(hex[c>>4])
			out.WriteByte(hex[c&0xf])
		default:
			out.WriteByte(c)
		}
	}
	out.WriteByte('"')
}

// hasSurrogateEscape reports whether a JSON text has a \uXXXX escape of a
// UTF-16 surrogate (D800-DFFF). encoding/json turns a lone one into U+FFFD,
// which would make "\ud800" and "\ufffd" the same request; pairs are
// rejected too, for simplicity (such a body is compared byte for byte).
// A backslash can only occur inside strings in valid JSON, so escapes are
// found without tracking strings; "\\" is skipped as a pair.
func hasSurrogateEscape(body []byte) bool {
	for i := 0; i+1 < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		if body[i+1] == 'u' && i+5 < len(body) {
			d, c := body[i+2]|0x20, body[i+3]|0x20 // lower-case
			if d == 'd' && c >= '8' && c <= 'f' && (c <= '9' || c >= 'a') {
				return true
			}
		}
		i++ // skip the escaped character
	}
	return false
}
