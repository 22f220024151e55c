#!/usr/bin/env python3
"""Runs VADER (PyPI `vaderSentiment`) and gema on the same labelled JSONL files in one run.

Prints one accuracy table (accuracy, macro-recall, macro-F1, negative F1 for both systems) and one
speed table (texts/s on one core and the gema/VADER ratio).

Both systems are scored the same way as `gema eval`: 3-class files on negative/neutral/positive;
files whose labels are only negative/positive as negative-vs-rest. VADER's label is the standard
compound threshold (>= 0.05 positive, <= -0.05 negative, else neutral). gema's speed is what
`gema eval` measures (language id + normalise + classify, one thread, texts in memory); VADER's is
`polarity_scores` over the same texts in memory. Both repeat each file for at least 0.5 s.

Usage:
    pip install vaderSentiment
    cargo build --release
    python3 scripts/compare_vader.py [--gema target/release/gema] [--model models/sentiment-fast.bin] \
        [FILE.jsonl ...]          # default: ../shared/data/sentiment/dev/*.jsonl
"""

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time

try:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
except ImportError:
    sys.exit("vaderSentiment is not installed: pip install vaderSentiment")


def metrics(gold, pred):
    binary = "neutral" not in gold
    if binary:
        gold = ["negative" if g == "negative" else "rest" for g in gold]
        pred = ["negative" if p == "negative" else "rest" for p in pred]
        classes = ["negative", "rest"]
    else:
        classes = ["negative", "neutral", "positive"]
    recalls, f1s = [], []
    for c in classes:
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        support = sum(1 for g in gold if g == c)
        predicted = sum(1 for p in pred if p == c)
        prec = tp / predicted if predicted else 0.0
        rec = tp / support if support else 0.0
        recalls.append(rec)
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    acc = sum(1 for g, p in zip(gold, pred) if g == p) / len(gold)
    return {
        "accuracy": acc,
        "macro_recall": sum(recalls) / len(classes),
        "macro_f1": sum(f1s) / len(classes),
        "neg_f1": f1s[0],
    }


def vader_label(compound):
    if compound >= 0.05:
        return "positive"
    if compound <= -0.05:
        return "negative"
    return "neutral"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gema", default=os.path.join(root, "target/release/gema"))
    ap.add_argument("--model", default=os.path.join(root, "models/sentiment-fast.bin"))
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    files = args.files or sorted(glob.glob(os.path.join(root, "../shared/data/sentiment/dev/*.jsonl")))
    if not files:
        sys.exit("no input files (pass JSONL files or put the data in ../shared/data)")
    gema_bin = os.environ.get("CARGO_TARGET_DIR") and not os.path.exists(args.gema)
    if gema_bin:
        args.gema = os.path.join(os.environ["CARGO_TARGET_DIR"], "release/gema")

    out = subprocess.run(
        [args.gema, "eval", "--json", "--model", args.model, *files],
        check=True, capture_output=True, text=True,
    ).stdout
    gema = {os.path.basename(r["file"]): r for r in map(json.loads, out.splitlines())}

    analyzer = SentimentIntensityAnalyzer()
    rows = []
    for f in files:
        data = [json.loads(line) for line in open(f, encoding="utf-8") if line.strip()]
        texts = [d["text"] for d in data]
        gold = [d["label"] for d in data]
        pred = [vader_label(analyzer.polarity_scores(t)["compound"]) for t in texts]
        # Same timing rule as `gema eval`: repeat the pass for at least half a second.
        t0 = time.perf_counter()
        passes = 0
        while passes == 0 or time.perf_counter() - t0 < 0.5:
            for t in texts:
                analyzer.polarity_scores(t)
            passes += 1
        secs = (time.perf_counter() - t0) / passes
        v = metrics(gold, pred)
        v["texts_per_s"] = len(texts) / secs
        rows.append((os.path.basename(f), len(texts), v, gema[os.path.basename(f)]))

    print(f"# VADER vs gema on {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), one thread each\n")
    print("| file | n | VADER acc | gema acc | VADER macro-R | gema macro-R | VADER macro-F1 | gema macro-F1 | VADER neg-F1 | gema neg-F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, v, g in rows:
        print(f"| {name} | {n} | {v['accuracy']:.3f} | {g['accuracy']:.3f} | {v['macro_recall']:.3f} | "
              f"{g['macro_recall']:.3f} | {v['macro_f1']:.3f} | {g['macro_f1']:.3f} | {v['neg_f1']:.3f} | {g['neg_f1']:.3f} |")
    print()
    print("| file | VADER texts/s | gema texts/s | gema / VADER |")
    print("|---|---:|---:|---:|")
    tv = tg = total = 0.0
    for name, n, v, g in rows:
        print(f"| {name} | {v['texts_per_s']:,.0f} | {g['texts_per_s']:,.0f} | {g['texts_per_s'] / v['texts_per_s']:.0f}x |")
        tv += n / v["texts_per_s"]
        tg += n / g["texts_per_s"]
        total += n
    print(f"| all | {total / tv:,.0f} | {total / tg:,.0f} | {tv / tg:.0f}x |")


if __name__ == "__main__":
    main()
