package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/wharf-go/wharf/httpidempotency"
)

// requireJSON answers 415 Unsupported Media Type, before the Idempotency-Key
// middleware and the handler, to a write whose body is not JSON: a
// Content-Type other than application/json (charset, if given, utf-8) or a
// Content-Encoding. When bodyRequired is false (a route without a body) a
// request with no Content-Type passes. This also stops cross-site HTML
// forms, which can only send form, multipart or text/plain bodies.
func (h *handler) requireJSON(bodyRequired bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := r.Header.Get("Content-Type")
		if ct != "" || bodyRequired {
			if msg := checkJSONType(ct); msg != "" {
				resp := errorResponse(http.StatusUnsupportedMediaType, "unsupported_media_type", msg)
				resp.Header.Set("Accept", "application/json")
				h.send(w, r, resp)
				return
			}
		}
		if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
			resp := errorResponse(http.StatusUnsupportedMediaType, "unsupported_media_type",
				fmt.Sprintf("Content-Encoding %s is not supported; send the body uncompressed", quote(ce)))
			resp.Header.Set("Accept-Encoding", "identity")
			h.send(w, r, resp)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkJSONType returns what is wrong with a Content-Type for a JSON body,
// or "".
func checkJSONType(ct string) string {
	const want = "send the body as JSON with Content-Type: application/json"
	if ct == "" {
		return "the request has no Content-Type; " + want
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Sprintf("Content-Type %s is not supported; %s", quote(ct), want)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fmt.Sprintf("charset %s is not supported; JSON is UTF-8: %s", quote(cs), want)
	}
	return ""
}

// decodeJSON reads one JSON object into dst: at most MaxBodyBytes, valid
// UTF-8 without lone surrogate escapes, no unknown fields, nothing after
// it. On failure it returns the 4xx to send.
//
// encoding/json replaces invalid UTF-8 and lone surrogates (\ud800) with
// U+FFFD without an error, so they are checked on the raw bytes first: a
// title must arrive as sent or be refused, never silently altered.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) (httpidempotency.Response, bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return errorResponse(http.StatusRequestEntityTooLarge, httpidempotency.CodeBodyTooLarge,
				fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes)), false
		}
		return errorResponse(http.StatusBadRequest, "invalid_json", "the body could not be read: "+err.Error()), false
	}
	if !utf8.Valid(raw) {
		at := invalidUTF8At(raw)
		return errorResponse(http.StatusBadRequest, "invalid_json",
			fmt.Sprintf("the body is not valid UTF-8 (byte 0x%02x at offset %d); send UTF-8 text", raw[at], at)), false
	}
	if at, esc, ok := loneSurrogate(raw); ok {
		return errorResponse(http.StatusBadRequest, "invalid_json",
			fmt.Sprintf(`the body has the unpaired UTF-16 surrogate escape %s at offset %d, which is not a character; send valid Unicode`, esc, at)), false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err = dec.Decode(dst)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			return errorResponse(http.StatusBadRequest, "invalid_json", "the body must hold a single JSON object and nothing after it"), false
		}
		return httpidempotency.Response{}, true
	}
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return errorResponse(http.StatusBadRequest, "invalid_json", `the body is empty; send a JSON object such as {"title": "buy milk"}`), false
	case errors.As(err, &syntaxErr):
		return errorResponse(http.StatusBadRequest, "invalid_json", fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err)), false
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorResponse(http.StatusBadRequest, "invalid_json", "malformed JSON: the body ends in the middle of a value"), false
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return errorResponse(http.StatusBadRequest, "invalid_json", fmt.Sprintf("the body must be a JSON object, not a %s", typeErr.Value)), false
		}
		return errorResponse(http.StatusBadRequest, "invalid_json", fmt.Sprintf("field %q must be a %s, not a %s", typeErr.Field, typeErr.Type, typeErr.Value)), false
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errorResponse(http.StatusBadRequest, "invalid_json", fmt.Sprintf("unknown field %s; the only field is \"title\"", strings.TrimPrefix(err.Error(), "json: unknown field "))), false
	default:
		return errorResponse(http.StatusBadRequest, "invalid_json", "the body could not be read: "+err.Error()), false
	}
}

// invalidUTF8At returns the offset of the first byte of b that is not part
// of valid UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return 0
}

// loneSurrogate finds a \uXXXX escape of a UTF-16 surrogate (D800-DFFF)
// that is not a high surrogate directly followed by an escaped low one,
// and returns its offset and text. A backslash occurs only inside strings
// in valid JSON (and invalid JSON is refused by the decoder anyway), so the
// escapes are found without tracking strings; "\\" is skipped as a pair.
func loneSurrogate(b []byte) (at int, esc string, found bool) {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if b[i+1] != 'u' {
			i++ // skip the escaped character
			continue
		}
		u, ok := hex4(b, i+2)
		if !ok {
			i++ // malformed: the decoder reports it
			continue
		}
		switch {
		case u >= 0xD800 && u <= 0xDBFF: // high: a low escape must follow
			if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if lo, ok := hex4(b, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 11 // the pair
					continue
				}
			}
			return i, string(b[i : i+6]), true
		case u >= 0xDC00 && u <= 0xDFFF: // low without a high before it
			return i, string(b[i : i+6]), true
		}
		i += 5
	}
	return 0, "", false
}

// hex4 parses the four hexadecimal digits of b at i.
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// quote renders a client-supplied value for an error message: quoted, cut
// to a readable length.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return fmt.Sprintf("%q", s)
}
