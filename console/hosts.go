package console

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Host checks (Options.AllowedHosts): the defence against DNS rebinding,
// where a page of another site re-resolves its own name to the console's
// address and so becomes of the console's origin.

// hostSet maps each allowed host, canonical, to its allowed ports ("" for
// any port).
type hostSet map[string][]string

func newHostSet(hosts []string) hostSet {
	if len(hosts) == 0 {
		return nil
	}
	s := hostSet{}
	for _, h := range hosts {
		name, port := splitHost(h)
		s[name] = append(s[name], port)
	}
	return s
}

// splitHost splits a Host header (or an AllowedHosts entry) into its
// canonical host (lower case, IP addresses in their shortest form, no
// brackets) and its port ("" when it has none).
func splitHost(h string) (host, port string) {
	host = h
	if hh, p, err := net.SplitHostPort(h); err == nil {
		host, port = hh, p
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), port
	}
	return strings.ToLower(host), port
}

// validHost says what is wrong with an AllowedHosts entry.
func validHost(h string) error {
	if h == "" {
		return errors.New("is empty")
	}
	if strings.ContainsAny(h, "/@?# \t\r\n") {
		return errors.New("is not a host: no scheme, path or user")
	}
	host, port := splitHost(h)
	if host == "" {
		return errors.New("has no host")
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("has port %q, not a number within 1..65535", port)
		}
	}
	return nil
}

// AllowsHost reports whether the console answers a request with this Host
// header (http.Request.Host): always without Options.AllowedHosts. A
// handler that answers some paths itself in front of the console (a login
// form) refuses alike the requests that the console would refuse.
func (c *Console) AllowsHost(host string) bool {
	if c.hosts == nil {
		return true
	}
	name, port := splitHost(host)
	for _, p := range c.hosts[name] {
		if p == "" || p == port {
			return true
		}
	}
	return false
}

// misdirected refuses a request for a Host the console does not answer:
// plain text, no page, no cookie, nothing read from the database.
func (c *Console) misdirected(w http.ResponseWriter, r *http.Request) {
	c.log.LogAttrs(r.Context(), slog.LevelWarn, "console: refused a request for a host it does not answer (DNS rebinding, or a proxy that forwards another Host)",
		slog.String("host", r.Host), slog.String("method", r.Method), slog.String("path", r.URL.Path))
	http.Error(w, fmt.Sprintf("this console does not answer to host %q; open it at one of: %s. "+
		"(A page of another site whose name resolves to this machine must not reach it; see console.Options.AllowedHosts.)",
		r.Host, strings.Join(c.opts.AllowedHosts, ", ")), http.StatusMisdirectedRequest)
}
