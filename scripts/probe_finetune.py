#!/usr/bin/env python3
"""How far can fine-tuning all-MiniLM-L6-v2 take the cascade? (an experiment, not the product)

`gema train --tier bert --finetune-blocks 5` fine-tunes the transformer's top blocks with tch
on the CPU (docs/SENTIMENT.md). On the 2-core VM one run takes about 26 minutes, so only a
handful of recipes were ever tried. This script re-implements the same recipe in PyTorch so
that a GPU can try many in minutes:

- the encoder: all-MiniLM-L6-v2's BERT (our own few lines of PyTorch, loading the checkpoint's
  safetensors by the names rust-bert uses), word pieces from its `tokenizer.json` after
  `gema::sentiment::bert::prepare` (URLs -> http, handles -> @user, `#` dropped), at most 128;
- the sentence vector: the mask-weighted mean of blocks 3, 4 and 5 (0-based), each
  L2-normalised, concatenated (1,152), followed by the fast tier's three out-of-fold
  log-probabilities (a stacked head), standardised with the frozen vectors' mean and standard
  deviation, then an MLP (256 ReLU units, dropout 0.1) -> 3 classes;
- stage 1: the MLP on frozen vectors (AdamW lr 1e-3, weight decay 0.01, batch 128, balanced
  class weights, 20 epochs); stage 2: the top blocks (`--from-block`, 1 = the five blocks
  `--finetune-blocks 5` tunes; 0 also tunes the embeddings) with the head, AdamW, batch 32,
  6 % warm-up then linear decay, the head at twice the blocks' learning rate, four checkpoints
  per epoch;
- fused decision: argmax(log p_head + w log p_fast), w from 0 to 3;
- the cascade: rows the fast tier is less than 0.55 sure of (`gema eval --tier cascade`) get
  the fused decision, the rest keep the fast label; on dev the language is the detected one.

Protocol (dev is not used to choose a recipe): `sweep` trains each recipe on 90 % of the
English training rows (row i of each file is held out when i % 10 == 9) and picks every
checkpoint, fusion weight and the recipe itself on that held-out tenth; dev scores are
printed alongside but not used. `final` trains one recipe on all rows and, like `gema train`,
picks the checkpoint and the fusion weight on the English dev files, for several seeds.

Commands (the fast tier's probabilities come from `examples/fast_probs.rs`):

    cargo run --release --example fast_probs -- ../shared/data .gema/probe/fast
    python3 scripts/probe_finetune.py pack --data ../shared/data --fast .gema/probe/fast \
        --model .gema/bert/minilm --out .gema/ft        # word pieces + float16 weights
    python3 scripts/probe_finetune.py sweep --pack .gema/ft [--recipes ...] [--final-seeds 42,43]
    python3 scripts/probe_finetune.py final --pack .gema/ft --lr 5e-5 --epochs 2 --seeds 42,43,44

`pack` needs numpy, tokenizers and safetensors; `sweep`/`final` need torch (CUDA when there is
one; on the 2-core VM one epoch of five blocks takes about 12 minutes).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

CLASSES = ["negative", "neutral", "positive"]
LAYERS = [3, 4, 5]
MAX_TOKENS = 128
ENGLISH_TRAIN = ["en-semeval2017", "en-nusax"]
ENGLISH_DEV = ["en-tweeteval-val", "en-nusax-valid"]
FAST_WEIGHTS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0]
CASCADE_BELOW = 0.55


def prepare(text):
    """gema::sentiment::bert::prepare."""
    out = []
    for word in text.split():
        lower = word.lower()
        if lower.startswith(("http://", "https://", "www.")):
            out.append("http")
        elif len(word) > 1 and word.startswith("@"):
            out.append("@user")
        elif word.startswith("#") and len(word) > 1:
            out.append(word[1:])
        else:
            out.append(word)
    return " ".join(out)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------
# pack: everything the GPU needs, small enough to travel (word pieces, labels, fast-tier
# probabilities, float16 weights).


def pack(args):
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()

    def encode(texts):
        ids = [e.ids for e in tok.encode_batch([prepare(t) for t in texts])]
        # [CLS] ... [SEP], longest-first truncation of one sequence = keep the head.
        return [x if len(x) <= MAX_TOKENS else x[: MAX_TOKENS - 1] + [x[-1]] for x in ids]

    os.makedirs(args.out, exist_ok=True)
    out = {}
    meta = {"train": [], "dev": []}
    for split, names in (("train", ENGLISH_TRAIN), ("dev", ENGLISH_DEV)):
        for name in names:
            rows = read_jsonl(os.path.join(args.data, "sentiment", split, name + ".jsonl"))
            probs = read_jsonl(os.path.join(args.fast, f"{split}-{name}.jsonl"))
            assert len(rows) == len(probs), f"{name}: {len(rows)} rows, {len(probs)} probs"
            if split == "train":
                fast = np.array(probs, dtype=np.float32)
                lang = np.zeros(len(rows), dtype=np.int8)  # tagged English
            else:
                fast = np.array([p["probs"] for p in probs], dtype=np.float32)
                lang = np.array(
                    [{"en": 0, "id": 1}.get(p["lang"], 2) for p in probs], dtype=np.int8
                )
            ids = encode([r["text"] for r in rows])
            lens = np.array([len(x) for x in ids], dtype=np.int32)
            out[f"{split}.{name}.ids"] = np.concatenate([np.array(x, dtype=np.int32) for x in ids])
            out[f"{split}.{name}.lens"] = lens
            out[f"{split}.{name}.y"] = np.array(
                [CLASSES.index(r["label"]) for r in rows], dtype=np.int8
            )
            out[f"{split}.{name}.fast"] = fast
            out[f"{split}.{name}.lang"] = lang
            meta[split].append(name)
            print(f"{split} {name}: {len(rows)} rows, mean {lens.mean():.1f} word pieces",
                  file=sys.stderr)
    save_file(out, os.path.join(args.out, "data.safetensors"))
    weights = load_file(os.path.join(args.model, "model.safetensors"))
    save_file({k: v.astype(np.float16) for k, v in weights.items()},
              os.path.join(args.out, "weights.safetensors"))
    with open(os.path.join(args.model, "config.json")) as f:
        meta["config"] = json.load(f)
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f)
    print(f"wrote {args.out}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Metrics, as src/sentiment/metrics.rs (3-class files; an unscored row counts as wrong).


def report(gold, pred):
    gold, pred = np.asarray(gold), np.asarray(pred)
    rec, f1 = [], []
    for c in range(3):
        tp = np.sum((pred == c) & (gold == c))
        n_gold, n_pred = np.sum(gold == c), np.sum(pred == c)
        r = tp / n_gold if n_gold else 0.0
        p = tp / n_pred if n_pred else 0.0
        rec.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return {"n": len(gold), "macro_recall": float(np.mean(rec)), "macro_f1": float(np.mean(f1)),
            "accuracy": float(np.mean(gold == pred))}


def objective(reports):
    """sentiment::train::mean_objective for 3-class files."""
    w = [math.sqrt(r["n"]) for r in reports]
    s = [(r["macro_recall"] + r["macro_f1"]) / 2 for r in reports]
    return sum(a * b for a, b in zip(w, s)) / sum(w)


# ---------------------------------------------------------------------------------------------
# The model and training (torch).


def run_sets(args, split_mode):
    """Training rows and the selection sets. split_mode 'holdout': train on 90 %, select on the
    held-out tenth; 'dev': train on all, select on the English dev files."""
    import torch
    from safetensors.torch import load_file

    d = load_file(os.path.join(args.pack, "data.safetensors"))
    with open(os.path.join(args.pack, "meta.json")) as f:
        meta = json.load(f)

    def rows(split, name):
        lens = d[f"{split}.{name}.lens"].long()
        ids = torch.split(d[f"{split}.{name}.ids"].long(), lens.tolist())
        return {"ids": list(ids), "y": d[f"{split}.{name}.y"].long(),
                "fast": d[f"{split}.{name}.fast"].float(), "lang": d[f"{split}.{name}.lang"].long()}

    train = {"ids": [], "y": [], "fast": []}
    held = {"ids": [], "y": [], "fast": [], "lang": []}
    for name in meta["train"]:
        r = rows("train", name)
        keep = [i for i in range(len(r["ids"])) if split_mode == "dev" or i % 10 != 9]
        out = [i for i in range(len(r["ids"])) if split_mode == "holdout" and i % 10 == 9]
        for dst, idx in ((train, keep), (held, out)):
            dst["ids"] += [r["ids"][i] for i in idx]
            dst["y"].append(r["y"][idx])
            dst["fast"].append(r["fast"][idx])
            if "lang" in dst:
                dst["lang"].append(torch.zeros(len(idx), dtype=torch.long))
    for dst in (train, held):
        for k in ("y", "fast", "lang"):
            if k in dst:
                dst[k] = torch.cat(dst[k]) if dst[k] else torch.zeros(0)
    dev = {name: rows("dev", name) for name in meta["dev"]}
    select = {"holdout": held} if split_mode == "holdout" else dev
    return meta, train, select, dev


class Bert:
    """BERT by rust-bert's weight names, in plain torch functions."""

    def __init__(self, weights, config, device):
        import torch

        self.cfg = config
        self.p = {k: torch.nn.Parameter(v.float().to(device)) for k, v in weights.items()
                  if not k.startswith("pooler.")}
        self.heads = config["num_attention_heads"]

    def params(self, from_block, tune_embeddings):
        out = []
        for k, v in self.p.items():
            if k.startswith("embeddings."):
                tuned = tune_embeddings
            else:
                tuned = int(k.split(".")[2]) >= from_block
            v.requires_grad_(tuned)
            if tuned:
                out.append(v)
        return out

    def forward(self, ids, mask, train, drop):
        import torch
        import torch.nn.functional as F

        p, eps = self.p, self.cfg["layer_norm_eps"]
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = (p["embeddings.word_embeddings.weight"][ids]
             + p["embeddings.position_embeddings.weight"][pos][None]
             + p["embeddings.token_type_embeddings.weight"][0][None, None])
        x = F.layer_norm(x, (x.shape[-1],), p["embeddings.LayerNorm.weight"],
                         p["embeddings.LayerNorm.bias"], eps)
        x = F.dropout(x, drop, train)
        add = (1.0 - mask[:, None, None, :].float()) * -10000.0
        outs = []
        b, t, h = x.shape
        nh = self.heads
        for i in range(self.cfg["num_hidden_layers"]):
            q = f"encoder.layer.{i}."

            def lin(z, name):
                return F.linear(z, p[q + name + ".weight"], p[q + name + ".bias"])

            def split(z):
                return z.view(b, t, nh, h // nh).transpose(1, 2)

            qq = split(lin(x, "attention.self.query"))
            kk = split(lin(x, "attention.self.key"))
            vv = split(lin(x, "attention.self.value"))
            att = (qq @ kk.transpose(-1, -2)) / math.sqrt(h // nh) + add
            att = F.dropout(att.softmax(-1), drop, train)
            ctx = (att @ vv).transpose(1, 2).reshape(b, t, h)
            a = F.dropout(lin(ctx, "attention.output.dense"), drop, train)
            x = F.layer_norm(a + x, (h,), p[q + "attention.output.LayerNorm.weight"],
                             p[q + "attention.output.LayerNorm.bias"], eps)
            m = F.gelu(lin(x, "intermediate.dense"))
            m = F.dropout(lin(m, "output.dense"), drop, train)
            x = F.layer_norm(m + x, (h,), p[q + "output.LayerNorm.weight"],
                             p[q + "output.LayerNorm.bias"], eps)
            outs.append(x)
        return outs


def check_against_transformers(bert, weights, config, ids, device, log):
    """When `transformers` is installed: its BertModel on the same weights must give the same
    hidden states as [`Bert`] (a check of the few lines above)."""
    try:
        import torch
        import transformers
    except ImportError:
        return
    ref = transformers.BertModel(transformers.BertConfig(**config), add_pooling_layer=False)
    missing, unexpected = ref.load_state_dict(
        {k: v.float() for k, v in weights.items() if not k.startswith("pooler.")}, strict=False)
    ref = ref.to(device).eval()
    x, mask = batches(ids, list(range(len(ids))), device)
    with torch.no_grad():
        ours = bert.forward(x, mask, False, 0.0)
        theirs = ref(input_ids=x, attention_mask=mask.long(), output_hidden_states=True)
    diff = max(float(((ours[l] - theirs.hidden_states[l + 1]).abs() * mask[..., None]).max())
               for l in LAYERS)
    log({"check": "transformers.BertModel", "version": transformers.__version__,
         "max_abs_diff": diff, "missing": missing, "unexpected": unexpected})
    assert diff < 1e-3, f"hidden states differ from transformers' by {diff}"


def pool(h, mask):
    m = mask.float().unsqueeze(-1)
    mean = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
    return mean / mean.norm(dim=1, keepdim=True).clamp_min(1e-9)


def batches(ids, idx, device):
    import torch

    seqs = [ids[i] for i in idx]
    x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True).to(device)
    lens = torch.tensor([len(s) for s in seqs], device=device)
    mask = torch.arange(x.shape[1], device=device)[None] < lens[:, None]
    return x, mask


def sentence_vectors(bert, ids, fast, device, batch=256):
    """[rows, 1152 + 3] inputs of the head (before standardising)."""
    import torch

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [None] * len(ids)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                         enabled=device.type == "cuda"):
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            x, mask = batches(ids, idx, device)
            outs = bert.forward(x, mask, False, 0.0)
            v = torch.cat([pool(outs[l].float(), mask) for l in LAYERS], 1)
            for k, i in enumerate(idx):
                out[i] = v[k]
    v = torch.stack(out)
    return torch.cat([v, fast.to(device).clamp_min(1e-6).log()], 1)


class Head:
    def __init__(self, dim, device, seed):
        import torch

        g = torch.Generator().manual_seed(seed)

        def init(o, i):
            bound = 1 / math.sqrt(i)
            w = (torch.rand(o, i, generator=g) * 2 - 1) * bound
            b = (torch.rand(o, generator=g) * 2 - 1) * bound
            return torch.nn.Parameter(w.to(device)), torch.nn.Parameter(b.to(device))

        self.w1, self.b1 = init(256, dim)
        self.w2, self.b2 = init(3, 256)

    def params(self):
        return [self.w1, self.b1, self.w2, self.b2]

    def __call__(self, s, train, drop=0.1):
        import torch.nn.functional as F

        h = F.dropout(F.linear(s, self.w1, self.b1).relu(), drop, train)
        return F.linear(h, self.w2, self.b2)

    def state(self):
        return [p.detach().clone() for p in self.params()]

    def load(self, st):
        for p, v in zip(self.params(), st):
            p.data.copy_(v)


def decisions(lp, s, w):
    """The fast tier's labels (-1: unscored, language other), the fused decision on every
    English row, the cascade's, and the share of rows the cascade escalates."""
    import torch

    fused = (lp.cpu() + w * s["fast"].clamp_min(1e-6).log()).argmax(1)
    conf, fast_label = s["fast"].max(1)
    fast_label = fast_label.masked_fill(s["lang"] == 2, -1)
    esc = (s["lang"] == 0) & (conf < CASCADE_BELOW)
    fused_all = torch.where(s["lang"] == 0, fused, fast_label)
    cascade = torch.where(esc, fused, fast_label)
    return fast_label, fused_all, cascade, float(esc.float().mean())


def scores(lp_by_set, sets, w):
    out = {}
    for name, s in sets.items():
        lp = lp_by_set[name]
        fast_label, fused_all, cascade, esc = decisions(lp, s, w)
        y = s["y"]
        out[name] = {
            "fast": report(y, fast_label)["macro_recall"],
            "head": report(y, lp.argmax(1).cpu())["macro_recall"],
            "fused": report(y, fused_all)["macro_recall"],
            "cascade": report(y, cascade)["macro_recall"],
            "escalated": esc,
            "fused_macro_f1": report(y, fused_all)["macro_f1"],
            "cascade_macro_f1": report(y, cascade)["macro_f1"],
        }
    return out


def pick_w(lp_by_set, sets):
    best = None
    for w in FAST_WEIGHTS:
        reps = []
        for name, s in sets.items():
            _, fused_all, _, _ = decisions(lp_by_set[name], s, w)
            reps.append(report(s["y"], fused_all))
        o = objective(reps)
        if best is None or o > best[0] + 1e-9:
            best = (o, w)
    return best[1]


def train_one(args, recipe, seed, split_mode, log):
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file

    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    meta, train, select, dev = run_sets(args, split_mode)
    if args.limit:  # a smoke test: the first rows of every set
        for st in [train, *select.values(), *dev.values()]:
            for k in ("ids", "y", "fast", "lang"):
                if k in st:
                    st[k] = st[k][: args.limit]
    weights = load_file(os.path.join(args.pack, "weights.safetensors"))
    bert = Bert(weights, meta["config"], device)
    check_against_transformers(bert, weights, meta["config"], train["ids"][:64], device, log)
    y = train["y"].to(device)
    counts = torch.bincount(y, minlength=3).float()
    cw = (len(y) / (3 * counts.clamp_min(1))).to(device)
    t0 = time.time()

    # Stage 1: frozen vectors, standardiser, MLP.
    bert.params(99, False)
    xtr = sentence_vectors(bert, train["ids"], train["fast"], device)
    mean = xtr.mean(0)
    scale = 1.0 / xtr.std(0, unbiased=False).clamp_min(1e-6)
    evalsets = dict(select)
    if split_mode == "holdout":
        evalsets.update({"dev:" + k: v for k, v in dev.items()})

    frozen = {}

    def head_lps(head, cached=False):
        out = {}
        with torch.no_grad():
            for name, s in evalsets.items():
                if cached and name in frozen:
                    v = frozen[name]
                else:
                    v = sentence_vectors(bert, s["ids"], s["fast"], device)
                    if cached:
                        frozen[name] = v
                out[name] = F.log_softmax(head((v - mean) * scale, False), 1).float().cpu()
        return out

    def sel_objective(lps):
        return objective([report(s["y"], lps[n].argmax(1)) for n, s in select.items()])

    head = Head(xtr.shape[1], device, seed)
    opt = torch.optim.AdamW(head.params(), lr=1e-3, weight_decay=0.01)
    s_tr = (xtr - mean) * scale
    g = torch.Generator().manual_seed(seed)
    best = (-1, None, None)
    for ep in range(20):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 128):
            idx = perm[i:i + 128].to(device)
            loss = F.cross_entropy(head(s_tr[idx], True), y[idx], weight=cw)
            opt.zero_grad()
            loss.backward()
            opt.step()
        lps = head_lps(head, cached=True)
        o = sel_objective(lps)
        if o > best[0] + 1e-9:
            best = (o, head.state(), f"frozen epoch {ep + 1}")
    head.load(best[1])
    log({"stage": "frozen", "best": best[2], "objective": best[0], "secs": time.time() - t0})
    if recipe["epochs"] == 0:
        lps = head_lps(head, cached=True)
        return finish(lps, evalsets, select, log, recipe, seed, best)

    # Stage 2: fine-tune the top blocks with the head.
    tuned = bert.params(recipe["from_block"], recipe.get("tune_embeddings", False))
    opt = torch.optim.AdamW([{"params": tuned, "lr": recipe["lr"]},
                             {"params": head.params(), "lr": 2 * recipe["lr"]}],
                            weight_decay=0.01)
    steps_per_epoch = math.ceil(len(y) / 32)
    total = steps_per_epoch * recipe["epochs"]
    warm = max(1, int(0.06 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
    checkpoints = {int(steps_per_epoch * k / 4) for k in range(1, 5)}
    tfast = train["fast"].to(device).clamp_min(1e-6).log()
    step = 0
    best = (-1, None, None)  # as gema: only fine-tuned checkpoints compete
    for ep in range(recipe["epochs"]):
        perm = torch.randperm(len(y), generator=g).tolist()
        for i in range(0, len(y), 32):
            idx = perm[i:i + 32]
            x, mask = batches(train["ids"], idx, device)
            with torch.autocast(device.type, dtype=torch.bfloat16,
                                enabled=device.type == "cuda"):
                outs = bert.forward(x, mask, True, 0.1)
                v = torch.cat([pool(outs[l].float(), mask) for l in LAYERS], 1)
            s = (torch.cat([v.float(), tfast[idx]], 1) - mean) * scale
            loss = F.cross_entropy(head(s, True), y[idx], weight=cw)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if (step - ep * steps_per_epoch) in checkpoints:
                lps = head_lps(head)
                o = sel_objective(lps)
                if o > best[0] + 1e-9:
                    best = (o, (head.state(), {k: v.detach().clone() for k, v in bert.p.items()}),
                            f"epoch {ep + 1} step {step - ep * steps_per_epoch}/{steps_per_epoch}")
                log({"checkpoint": f"{ep + 1}:{step - ep * steps_per_epoch}", "objective": o,
                     "loss": float(loss), "secs": round(time.time() - t0, 1)})
    head.load(best[1][0])
    for k, v in best[1][1].items():
        bert.p[k].data.copy_(v)
    lps = head_lps(head)
    return finish(lps, evalsets, select, log, recipe, seed, best)


def finish(lps, evalsets, select, log, recipe, seed, best):
    w = pick_w({n: lps[n] for n in select}, select)
    sc = scores(lps, evalsets, w)
    row = {"recipe": recipe, "seed": seed, "best": best[2], "selection_objective": best[0],
           "fast_weight": w}
    for name, s in sc.items():
        row[name] = {k: round(v, 4) for k, v in s.items()}
    log(row)
    return row


def parse_recipes(text):
    out = []
    for r in text.split(";"):
        kv = dict(x.split("=") for x in r.split(","))
        out.append({"from_block": int(kv.get("from", 1)), "epochs": int(kv.get("epochs", 2)),
                    "lr": float(kv.get("lr", 5e-5)),
                    "tune_embeddings": kv.get("emb", "0") == "1"})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--data", required=True)
    p.add_argument("--fast", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    for name in ("sweep", "final"):
        p = sub.add_parser(name)
        p.add_argument("--pack", required=True)
        p.add_argument("--limit", type=int, default=0, help="first N training rows (a smoke test)")
        p.add_argument("--log", default="", help="also append JSON lines here")
        if name == "sweep":
            p.add_argument("--recipes", default="epochs=0;from=1,epochs=2,lr=5e-5",
                           help="';'-separated: from=BLOCK,epochs=E,lr=LR[,emb=1]")
            p.add_argument("--seed", type=int, default=42)
            p.add_argument("--final-seeds", default="",
                           help="then train the chosen recipe on all rows with these seeds "
                           "(as `final`)")
        else:
            p.add_argument("--from-block", type=int, default=1)
            p.add_argument("--epochs", type=int, default=2)
            p.add_argument("--lr", type=float, default=5e-5)
            p.add_argument("--emb", action="store_true")
            p.add_argument("--seeds", default="42")
    args = ap.parse_args()
    if args.cmd == "pack":
        return pack(args)

    def log(obj):
        line = json.dumps(obj)
        print(line, flush=True)
        if args.log:
            with open(args.log, "a") as f:
                f.write(line + "\n")

    if args.cmd == "sweep":
        rows = [train_one(args, recipe, args.seed, "holdout", log)
                for recipe in parse_recipes(args.recipes)]
        # The recipe whose cascade scores best on the held-out tenth (dev unseen).
        best = max(rows, key=lambda r: r["holdout"]["cascade"])
        log({"chosen_on_holdout": best["recipe"], "holdout_cascade": best["holdout"]["cascade"]})
        if args.final_seeds:
            for seed in [int(x) for x in args.final_seeds.split(",")]:
                train_one(args, best["recipe"], seed, "dev", log)
    else:
        recipe = {"from_block": args.from_block, "epochs": args.epochs, "lr": args.lr,
                  "tune_embeddings": args.emb}
        for seed in [int(s) for s in args.seeds.split(",")]:
            train_one(args, recipe, seed, "dev", log)


if __name__ == "__main__":
    main()
