package jetstream

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultSubject is the default topic-to-subject mapping: the topic itself
// when it is a valid publish subject (dots separate tokens, so the topic
// "order.placed" is the subject "order.placed"), otherwise the topic with
// each whitespace or control character and each wildcard ('*', '>')
// replaced by '_', each empty token (leading, trailing or doubled dots)
// filled with '_', and a leading '$' (the prefix of NATS's own APIs)
// replaced by '_'. Distinct topics can then share a subject; HeaderTopic
// always carries the topic as it is.
func DefaultSubject(topic string) string {
	if checkSubject(topic) == nil {
		return topic
	}
	var b strings.Builder
	b.Grow(len(topic) + 2)
	tokenStart := true
	for i, r := range topic {
		switch {
		case r == '.':
			if tokenStart {
				b.WriteByte('_')
			}
			b.WriteByte('.')
			tokenStart = true
			continue
		case i == 0 && r == '$', r == '*', r == '>', r == utf8.RuneError, unicode.IsSpace(r), unicode.IsControl(r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
		tokenStart = false
	}
	if tokenStart {
		b.WriteByte('_')
	}
	return b.String()
}

// checkSubject says why s is not a valid subject to publish to, or returns
// nil.
func checkSubject(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	if s[0] == '$' {
		return errors.New("starts with '$', the prefix of NATS's own APIs")
	}
	for _, r := range s {
		switch {
		case r == '*' || r == '>':
			return errors.New("holds a wildcard ('*' or '>'), which cannot be published to")
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return errors.New("holds whitespace or a control character")
		}
	}
	if s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return errors.New("has an empty token (a leading, trailing or doubled '.')")
	}
	return nil
}

// forbiddenHeaderChars are the printable ASCII characters that nats.go
// refuses in header names.
const forbiddenHeaderChars = `"()/,:;<=>?@[\]{}`

// validHeaderName reports whether nats.go accepts k as a header name:
// printable ASCII (33 to 126) other than forbiddenHeaderChars.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < 33 || c > 126 || strings.IndexByte(forbiddenHeaderChars, c) >= 0 {
			return false
		}
	}
	return true
}

// validStreamName reports whether name can name a JetStream stream.
func validStreamName(name string) bool {
	return name != "" && !strings.ContainsAny(name, ".*>/\\") && !strings.ContainsFunc(name, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	})
}
