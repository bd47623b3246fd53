package core

import "fmt"

// MaxIdentifierLength bounds each part of an identifier (PostgreSQL's limit
// is 63 bytes, MySQL's 64).
const MaxIdentifierLength = 63

// ValidateIdentifier checks a table name: one or two dot-separated parts
// ("table" or "schema.table"), each starting with a letter or underscore and
// made of ASCII letters, digits and underscores, at most MaxIdentifierLength
// characters. Validated identifiers are safe to place in SQL; nothing else
// ever is.
func ValidateIdentifier(name string) error {
	if name == "" {
		return Invalidf("identifier is empty; use letters, digits and underscores, optionally schema-qualified (schema.table)")
	}
	parts := 0
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			continue
		}
		part := name[start:i]
		parts++
		if err := validatePart(part); err != nil {
			return fmt.Errorf("identifier %q: %w", name, err)
		}
		start = i + 1
	}
	if parts > 2 {
		return Invalidf("identifier %q has %d dot-separated parts; use table or schema.table", name, parts)
	}
	return nil
}

func validatePart(p string) error {
	if p == "" {
		return Invalidf("empty part; use table or schema.table")
	}
	if len(p) > MaxIdentifierLength {
		return Invalidf("part %q is %d characters; the limit is %d", p, len(p), MaxIdentifierLength)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return Invalidf("character %q at position %d of %q is not allowed; use ASCII letters, digits (not first) and underscores", c, i, p)
		}
	}
	return nil
}
