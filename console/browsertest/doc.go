// Package browsertest drives the web console (package console) in a real
// headless Chromium: it is a module of its own so that the browser driver
// (chromedp) is never a dependency of wharf's library. Its tests need
// Debian's chromium (scripts/browser.sh installs it); without it they are
// skipped loudly, and fail under CI=true.
package browsertest
