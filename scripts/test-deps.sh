#!/usr/bin/env bash
# Puts what the integration tests need beyond Kafka and ClickHouse into .gema/ (git-ignored):
#   .gema/test-venv/   a Python virtual environment (from PyPI) with aiosmtpd, the real SMTP
#                      server tests/report.rs delivers the email digest to, and chdb-core
#                      (ClickHouse 26.9 in process) plus lz4, which scripts/chdb_server.py needs
#                      for tests/modern_clickhouse.rs
# Idempotent: an environment that already imports the pinned versions is kept. Prints the
# environment's Python with --python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

AIOSMTPD_VERSION=1.4.6
CHDB_VERSION=26.9.0
LZ4_VERSION=4.4.5
venv="$PWD/.gema/test-venv"
python="$venv/bin/python"

if [ "${1:-}" = "--python" ]; then
  echo "$python"
  exit 0
fi
if [ -x "$python" ] && "$python" -c "
import sys, aiosmtpd, chdb, lz4
sys.exit((aiosmtpd.__version__, chdb.__version__, lz4.__version__)
         != ('$AIOSMTPD_VERSION', '$CHDB_VERSION', '$LZ4_VERSION'))" 2>/dev/null; then
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 (with venv) not found: needed for the test venv" >&2; exit 1; }
echo "test-deps: installing aiosmtpd==$AIOSMTPD_VERSION chdb-core==$CHDB_VERSION lz4==$LZ4_VERSION from PyPI into $venv" >&2
python3 -m venv "$venv"
"$python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION" \
  "chdb-core==$CHDB_VERSION" "lz4==$LZ4_VERSION" >&2
"$python" -c "import aiosmtpd, chdb; print('test-deps: aiosmtpd', aiosmtpd.__version__, 'and chdb', chdb.__version__, 'ready')" >&2
