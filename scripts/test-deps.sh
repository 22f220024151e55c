#!/usr/bin/env bash
# Puts what the integration tests need beyond Kafka and ClickHouse into .gema/ (git-ignored):
#   .gema/test-venv/   a Python virtual environment with aiosmtpd (from PyPI), the real SMTP
#                      server tests/report.rs delivers the email digest to
# Idempotent: an environment that already imports the pinned aiosmtpd is kept. Prints the
# server's Python with --python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

AIOSMTPD_VERSION=1.4.6
venv="$PWD/.gema/test-venv"
python="$venv/bin/python"

if [ "${1:-}" = "--python" ]; then
  echo "$python"
  exit 0
fi
if [ -x "$python" ] && "$python" -c "import aiosmtpd, sys; sys.exit(aiosmtpd.__version__ != '$AIOSMTPD_VERSION')" 2>/dev/null; then
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 (with venv) not found: needed for aiosmtpd" >&2; exit 1; }
echo "test-deps: installing aiosmtpd==$AIOSMTPD_VERSION from PyPI into $venv" >&2
python3 -m venv "$venv"
"$python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION" >&2
"$python" -c "import aiosmtpd; print('test-deps: aiosmtpd', aiosmtpd.__version__, 'ready')" >&2
