"""Assign a split (tune / test) to every catalogue group that has none yet.

    python -m eval.dev.split          # fills the empty `split:` lines of catalogue.yaml

Unit: the group (documents of one source share a group, so one trial's label sections or one
trial's abstract and registry record never straddle the splits). Groups are taken kind by kind
(a group's kind is that of its first document), in an order fixed by a seeded hash of the group
name, and each goes to the split with fewer documents of that kind so far (counting groups
assigned in earlier batches); ties go by the hash. Re-running never moves an assigned group.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict

from eval.dev import CATALOGUE_PATH, QUESTIONS_PATH, load_dev_catalogue, load_dev_questions

SEED = "fsgs-devset-2026"  # fixed so the split is reproducible


def _h(group: str) -> int:
    return int(hashlib.sha256(f"{SEED}:{group}".encode()).hexdigest(), 16)


def assign() -> dict[str, str]:
    """New split per group (only for groups with no split yet)."""
    cat = load_dev_catalogue()
    groups: dict[str, list] = defaultdict(list)
    for d in cat.values():
        groups[d.group].append(d)
    counts: Counter[tuple[str, str]] = Counter()
    for d in cat.values():
        if d.split:
            counts[(d.kind, d.split)] += 1
    new: dict[str, str] = {}
    for g, ds in groups.items():  # a document added to an assigned group joins its split
        done = {d.split for d in ds if d.split}
        if done and any(not d.split for d in ds):
            new[g] = done.pop()
    pending = [g for g, ds in groups.items() if not any(d.split for d in ds)]
    for g in sorted(pending, key=lambda g: (groups[g][0].kind, _h(g))):
        kind = groups[g][0].kind
        tune, test = counts[(kind, "tune")], counts[(kind, "test")]
        if tune != test:
            split = "tune" if tune < test else "test"
        else:
            split = "tune" if _h(g) % 2 == 0 else "test"
        new[g] = split
        for d in groups[g]:
            counts[(d.kind, split)] += 1
    return new


def question_splits() -> dict[str, str]:
    """New split per question id (only for questions with no split yet).

    Answerable: the split of its sources (an error if they straddle the splits).
    Unanswerable with `near` documents (a near miss of particular documents): their split, so
    the near miss is asked of the index that holds them. Other unanswerable ones: seeded 50/50 -
    in hash order, each to the split with fewer unanswerable questions so far.
    """
    cat = load_dev_catalogue()
    qs = load_dev_questions()
    counts = Counter(q.split for q in qs if not q.answerable and q.split)
    new: dict[str, str] = {}
    for q in qs:
        if q.split:
            continue
        if not q.answerable and q.near:
            splits = {cat[s].split for s in q.near if s in cat}
            if len(splits) != 1 or "" in splits:
                raise SystemExit(f"{q.id}: near documents span splits or lack one: {sorted(splits)}")
            new[q.id] = splits.pop()
            counts[new[q.id]] += 1
            continue
        if not q.answerable:
            continue
        splits = {cat[s].split for s in q.sources if s in cat}
        if len(splits) != 1 or "" in splits:
            raise SystemExit(f"{q.id}: sources span splits or lack one: {sorted(splits)}")
        new[q.id] = splits.pop()
    for q in sorted((q for q in qs if not q.answerable and not q.split and not q.near), key=lambda q: _h(q.id)):
        tune, test = counts["tune"], counts["test"]
        split = ("tune" if tune < test else "test") if tune != test else ("tune" if _h(q.id) % 2 == 0 else "test")
        new[q.id] = split
        counts[split] += 1
    return new


def _fill_questions() -> dict[str, str]:
    new = question_splits()
    text = QUESTIONS_PATH.read_text(encoding="utf-8")
    for qid, split in new.items():
        pat = re.compile(rf'(\n  - id: {re.escape(qid)}\n(?:    .*\n)*?    split: )""')
        text, n = pat.subn(rf"\g<1>{split}", text, count=1)
        if n != 1:
            raise SystemExit(f"questions.yaml: no empty split line for {qid}")
    QUESTIONS_PATH.write_text(text, encoding="utf-8")
    return new


def main() -> None:
    new = assign()
    cat = load_dev_catalogue()
    text = CATALOGUE_PATH.read_text(encoding="utf-8")
    for name, d in cat.items():
        if d.group in new and not d.split:
            # the entry's own `split: ""` line, the first after its name
            pat = re.compile(rf'(\n  {re.escape(name)}:\n(?:    .*\n|\s*\n)*?    split: )""')
            text, n = pat.subn(rf"\g<1>{new[d.group]}", text, count=1)
            if n != 1:
                raise SystemExit(f"catalogue.yaml: no empty split line for {name}")
    CATALOGUE_PATH.write_text(text, encoding="utf-8")
    for g, s in sorted(new.items()):
        print(f"{s:5} {g}")
    filled = _fill_questions()
    print(f"{len(filled)} question splits filled")


if __name__ == "__main__":
    main()
