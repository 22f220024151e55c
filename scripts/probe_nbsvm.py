#!/usr/bin/env python3
"""Probe: does an NB-SVM next to the fast tier close the Indonesian gaps?

Averaging a plain TF-IDF logistic regression with an NB-SVM (Wang & Manning 2012: binary word
1-3-grams scaled by per-class log-count ratios, one logistic regression per class) is a classic
way to gain on sentiment over either alone. This asks whether the same NB-SVM helps the fast
tier, which already has character n-grams and lexicon features:

- out of fold on the training files: the NB-SVM is trained five times without one fold (row i of
  a file is in fold i % 5, as `examples/fast_probs.rs` folds the fast tier) and its
  probabilities are averaged with the fast tier's out-of-fold ones (no dev data involved);
- on dev: the NB-SVM trained on all training rows of a language, averaged with the committed
  model's probabilities on the rows detected as that language (others keep the fast tier's;
  `other` stays unscored, as in `gema eval`).

One NB-SVM per language (Indonesian: SmSA + IndoLEM + NusaX-id; English: SemEval + NusaX-en),
balanced class weights, C and n-gram length from the command line (defaults 1 and 3).

    cargo run --release --example fast_probs -- ../shared/data .gema/probe/fast
    python3 -m venv /tmp/skv && /tmp/skv/bin/pip install scikit-learn
    /tmp/skv/bin/python scripts/probe_nbsvm.py [--data ../shared/data] [--probs .gema/probe/fast]

Metrics per file as `gema eval` reports its target: macro-F1 (3-class Indonesian files and
NusaX-en), negative F1 (IndoLEM, negative-vs-rest), macro-recall (SemEval / TweetEval).
"""

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score

LABELS = {"negative": 0, "neutral": 1, "positive": 2}
TRAIN = {"id": ["id-smsa", "id-indolem", "id-nusax"], "en": ["en-semeval2017", "en-nusax"]}
DEV = {"id": ["id-smsa-valid", "id-indolem-dev", "id-nusax-valid"],
       "en": ["en-tweeteval-val", "en-nusax-valid"]}


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def nbsvm(texts, y, c, ngrams):
    """Fits one-vs-rest NB-SVMs; returns a function from texts to normalised probabilities."""
    vec = CountVectorizer(ngram_range=(1, ngrams), binary=True)
    x = vec.fit_transform(texts)
    models = []
    for k in range(3):
        yk = (y == k).astype(int)
        p = np.asarray(x[yk == 1].sum(0)).ravel() + 1
        q = np.asarray(x[yk == 0].sum(0)).ravel() + 1
        r = np.log((p / p.sum()) / (q / q.sum()))
        lr = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        models.append((r, lr.fit(x.multiply(r).tocsr(), yk)))

    def predict(more):
        x2 = vec.transform(more)
        out = np.column_stack([m.predict_proba(x2.multiply(r).tocsr())[:, 1] for r, m in models])
        return out / out.sum(1, keepdims=True)

    return predict


def metric(name, gold, pred):
    if "indolem" in name:
        return f1_score(gold == 0, pred == 0)
    if "tweeteval" in name or "semeval" in name:
        return recall_score(gold, pred, average="macro", labels=[0, 1, 2])
    return f1_score(gold, pred, average="macro", labels=[0, 1, 2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--probs", default=".gema/probe/fast")
    ap.add_argument("--c", type=float, default=1.0)
    ap.add_argument("--ngrams", type=int, default=3)
    args = ap.parse_args()
    data, probs = Path(args.data) / "sentiment", Path(args.probs)
    print("file, fast tier, NB-SVM alone, average of the two")
    for lang in ("id", "en"):
        rows, source, fast = [], [], []
        for f in TRAIN[lang]:
            r = read_jsonl(data / "train" / f"{f}.jsonl")
            rows += r
            source += [f] * len(r)
            fast += read_jsonl(probs / f"train-{f}.jsonl")
        texts = [r["text"] for r in rows]
        y = np.array([LABELS[r["label"]] for r in rows])
        fast = np.array(fast)
        source = np.array(source)
        fold = np.concatenate([np.arange((source == f).sum()) % 5 for f in TRAIN[lang]])
        oof = np.zeros_like(fast)
        for k in range(5):
            train, held = fold != k, fold == k
            predict = nbsvm([t for t, m in zip(texts, train) if m], y[train], args.c, args.ngrams)
            oof[held] = predict([t for t, m in zip(texts, held) if m])
        for f in TRAIN[lang]:
            m = source == f
            print(f"out of fold  {f:<18} {metric(f, y[m], fast[m].argmax(1)):.4f}  "
                  f"{metric(f, y[m], oof[m].argmax(1)):.4f}  "
                  f"{metric(f, y[m], (fast[m] + oof[m]).argmax(1)):.4f}")
        predict = nbsvm(texts, y, args.c, args.ngrams)
        for f in DEV[lang]:
            dev = read_jsonl(data / "dev" / f"{f}.jsonl")
            got = read_jsonl(probs / f"dev-{f}.jsonl")
            gold = np.array([LABELS[r["label"]] for r in dev])
            p_fast = np.array([g["probs"] for g in got])
            detected = np.array([g["lang"] for g in got])
            p_nb = predict([r["text"] for r in dev])
            mine = (detected == lang)[:, None]
            avg = np.where(mine, (p_fast + p_nb) / 2, p_fast)
            alone = np.where(mine, p_nb, p_fast)

            def labels(p):
                return np.where(detected == "other", -1, p.argmax(1))

            print(f"dev          {f:<18} {metric(f, gold, labels(p_fast)):.4f}  "
                  f"{metric(f, gold, labels(alone)):.4f}  {metric(f, gold, labels(avg)):.4f}")


if __name__ == "__main__":
    main()
