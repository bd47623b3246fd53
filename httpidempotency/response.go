package httpidempotency

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// Response is an HTTP response as the middleware stores and replays it.
type Response struct {
	// Status is the status code; 0 means 200.
	Status int
	// Header holds the response headers. Only those in the middleware's
	// replay allow-list (Options.ReplayHeaders) are stored and replayed.
	Header http.Header
	// Body is the response body.
	Body []byte
}

// JSON returns a Response with status, the JSON encoding of v (followed by a
// newline, as json.Encoder writes it) and "Content-Type: application/json".
// It fails only when v cannot be encoded.
func JSON(status int, v any) (Response, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return Response{}, fmt.Errorf("httpidempotency: encode JSON response: %w", err)
	}
	h := make(http.Header)
	h.Set("Content-Type", "application/json")
	return Response{Status: status, Header: h, Body: buf.Bytes()}, nil
}

// Write sends r on w: its headers (added to those already set on w), its
// status and its body. It returns the error of writing the body.
func (r Response) Write(w http.ResponseWriter) error {
	h := w.Header()
	for k, vs := range r.Header {
		h[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	w.WriteHeader(r.status())
	if len(r.Body) == 0 {
		return nil
	}
	_, err := w.Write(r.Body)
	return err
}

func (r Response) status() int {
	if r.Status == 0 {
		return http.StatusOK
	}
	return r.Status
}

// storedVersion is the format version of stored responses.
const storedVersion = 1

// storedResponse is the JSON stored as the idempotency record's result. The
// body is base64 (encoding/json's []byte encoding), so it survives stores
// that normalise JSON (jsonb) byte for byte.
type storedResponse struct {
	Version int                 `json:"v"`
	Status  int                 `json:"status"`
	Header  map[string][]string `json:"header,omitempty"`
	Body    []byte              `json:"body,omitempty"`
}

// encode renders r for storage, keeping only the allowed headers.
func encode(r Response, allow map[string]bool) ([]byte, error) {
	sr := storedResponse{Version: storedVersion, Status: r.status(), Body: r.Body}
	for k, vs := range r.Header {
		k = http.CanonicalHeaderKey(k)
		if allow[k] && len(vs) > 0 {
			if sr.Header == nil {
				sr.Header = make(map[string][]string)
			}
			sr.Header[k] = append([]string(nil), vs...)
		}
	}
	raw, err := json.Marshal(sr)
	if err != nil {
		return nil, fmt.Errorf("httpidempotency: encode stored response: %w", err)
	}
	return raw, nil
}

// decode parses a stored response.
func decode(raw []byte) (storedResponse, error) {
	var sr storedResponse
	if err := json.Unmarshal(raw, &sr); err != nil {
		return sr, fmt.Errorf("httpidempotency: decode stored response: %w", err)
	}
	if sr.Version != storedVersion || sr.Status < 100 || sr.Status > 599 {
		return sr, fmt.Errorf("httpidempotency: stored response has version %d and status %d; want version %d and a valid status", sr.Version, sr.Status, storedVersion)
	}
	return sr, nil
}

// recorder buffers a handler's response so it can be stored before the
// client sees it.
type recorder struct {
	w           http.ResponseWriter
	status      int
	header      http.Header // snapshot taken at WriteHeader, as net/http does
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.w.Header() }

func (r *recorder) WriteHeader(code int) {
	if r.wroteHeader || code < 200 {
		return // repeated calls are ignored, as by net/http; 1xx are not buffered
	}
	r.wroteHeader = true
	r.status = code
	r.header = r.w.Header().Clone()
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	return r.body.Write(p)
}

// response returns what the handler wrote (200 with no body if nothing).
func (r *recorder) response() Response {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	return Response{Status: r.status, Header: r.header, Body: r.body.Bytes()}
}

// flush sends the buffered response to the client.
func (r *recorder) flush(resp Response) {
	h := r.w.Header()
	for k := range h {
		if _, ok := resp.Header[k]; !ok {
			delete(h, k)
		}
	}
	for k, vs := range resp.Header {
		h[k] = vs
	}
	r.w.WriteHeader(resp.status())
	if len(resp.Body) > 0 {
		_, _ = r.w.Write(resp.Body)
	}
}
