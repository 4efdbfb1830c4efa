#!/bin/sh
# The browser tests drive Debian's Chromium (tests/e2e/test_console_browser.py); Playwright's own
# browser download is not used. Installs it when it is missing and this runs as root (CI);
# otherwise says what to run.
set -e
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    exit 0
fi
echo "the browser tests need Debian's chromium: sudo apt-get install chromium chromium-driver" >&2
exit 1
