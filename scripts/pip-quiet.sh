#!/bin/bash
# pip install, printing only real problems. Usage: pip-quiet.sh VENV ARGS...
set -uo pipefail
venv=$1; shift
"$venv/bin/pip" install -q --disable-pip-version-check "$@" 2>&1 \
    | grep -v -e 'is ignored: it is neither a file nor a directory' -e '^$' || true
exit "${PIPESTATUS[0]}"
