#!/usr/bin/env bash
# browser.sh - the headless Chromium of wharf's browser tests (the web
# console, console/browsertest).
#
# Usage:
#   scripts/browser.sh path         print the browser's path, installing it first if needed
#   scripts/browser.sh run -- CMD   export WHARF_TEST_CHROMIUM (when there is a browser) and run CMD
#
# The browser is Debian's chromium (/usr/bin/chromium). When it is missing
# and we are root, it is installed with apt-get. Otherwise the browser
# tests are skipped with a loud notice, except with CI=true, where a
# browser that cannot be installed is a hard failure. WHARF_TEST_CHROMIUM,
# when already set, names the browser to use instead.
set -euo pipefail

IS_CI=0
case "${CI:-}" in true | 1 | yes) IS_CI=1 ;; esac

log() { printf 'browser: %s\n' "$*" >&2; }

find_browser() {
	local c
	for c in "${WHARF_TEST_CHROMIUM:-}" /usr/bin/chromium chromium chromium-browser; do
		[ -n "$c" ] || continue
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 1
}

install_browser() {
	[ "$(id -u)" = 0 ] || return 1
	command -v apt-get >/dev/null 2>&1 || return 1
	local aptlog
	aptlog=$(mktemp /tmp/wharf-browser-apt.XXXXXX)
	log "installing Debian's chromium with apt-get (log: $aptlog)"
	if ! { apt-get -o DPkg::Lock::Timeout=600 update >>"$aptlog" 2>&1 &&
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
			chromium fonts-dejavu-core >>"$aptlog" 2>&1; }; then
		tail -n 20 "$aptlog" >&2 || true
		return 1
	fi
}

# ensure prints the browser's path, or nothing when there is none (and
# fails under CI).
ensure() {
	local p
	if p=$(find_browser); then
		printf '%s\n' "$p"
		return 0
	fi
	install_browser || true
	if p=$(find_browser); then
		log "installed $("$p" --version 2>/dev/null || echo chromium)"
		printf '%s\n' "$p"
		return 0
	fi
	if [ "$IS_CI" = 1 ]; then
		log "ERROR: no Chromium and it could not be installed (CI=true: a missing browser is fatal)"
		exit 1
	fi
	printf '\n*** Chromium not available (install Debian'"'"'s chromium, or run as root to have %s install it); the browser tests will be skipped ***\n\n' "$0" >&2
}

case "${1:-}" in
path)
	ensure
	;;
run)
	shift
	[ "${1:-}" = "--" ] && shift
	[ $# -gt 0 ] || { log "run needs a command"; exit 2; }
	p=$(ensure)
	if [ -n "$p" ]; then
		export WHARF_TEST_CHROMIUM=$p
	fi
	exec "$@"
	;;
*)
	sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
	exit 2
	;;
esac
