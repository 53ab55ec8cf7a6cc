"""Chooses the evidence ranking weights and ``grounding.min_confidence`` on the tuning splits of the answer set
(bench/data/answers: dev, test, test2), never on the held-out test3 split.

    .venv/bin/python bench/answers_tune.py [--top-k 3]

Selection does not involve the LLM, so each dev question's features (per-sentence semantic, lexical and
answer-type scores, passage coverage, unknown names) are computed once and every weight combination is
re-ranked offline: an answerable question counts as right when its extractive answer holds the accepted facts
and its confidence reaches the threshold; an unanswerable one when its confidence stays below. Prints the best
combinations (sum of dev accuracy and dev refusal rate; ties go to the simplest) and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import AgentConfig
from agent.evaluation import load_cases
from agent.evaluation.scoring import holds_all
from agent.evidence import (
    EvidenceSelection,
    EvidenceSelector,
    SelectionFeatures,
    SelectionWeights,
    combine_parts,
)
from agent.extractive import extractive_sentences
from agent.question import Question, analyse
from bench.answers import DATA, HELD_OUT, KNOWLEDGE_BASES, knowledge_base
from knowledge.config import KnowledgeConfig
from knowledge.embeddings.registry import create_embedder

Features = list[tuple[Any, list[SelectionFeatures]]]


async def dev_features(
    top_k: int, sentence_embedder: bool = True, splits: tuple[str, ...] = ("dev",)
) -> Features:
    embedder = create_embedder(KnowledgeConfig().embedding)
    selector = EvidenceSelector(embedder if sentence_embedder else None)
    out = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-answers-tune-"))
    try:
        for kb in KNOWLEDGE_BASES:
            cases = [c for c in load_cases(DATA / kb / "questions.yaml") if c.split in splits]
            cases = [c for c in cases if c.category != "small_talk"]
            if not cases:
                continue
            async with knowledge_base(kb, embedder, workdir) as base:
                for case in cases:
                    previous: Question | None = None
                    for turn in case.after:
                        previous = analyse(turn, previous)
                    question = analyse(case.ask, previous)
                    parts = []
                    for part in question.parts or [question]:  # as the conversation does: part by part
                        chunks = await base.retriever.retrieve(part.retrieval_text, k=top_k)
                        parts.append(await selector.features(part, chunks))
                    out.append((case, parts))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def _outcome(
    case: Any, selections: list[EvidenceSelection], t: float, part_ratio: float, memo: dict[Any, bool]
) -> tuple[bool, bool]:
    """(answered, right) of one case at threshold ``t``, as the conversation would reply."""
    combined = combine_parts(selections, t, part_ratio)
    answered = bool(combined.answer) and combined.confidence >= t
    if not answered or case.category != "answerable":
        return answered, False
    key = tuple(e.sentence for e in combined.answer)
    if key not in memo:
        memo[key] = holds_all(" ".join(extractive_sentences(combined.answer)), case.expect)
    return True, memo[key]


THRESHOLDS = np.arange(181) / 200


def score(
    features: Features, weights: SelectionWeights, part_ratio: float = 1.0
) -> tuple[float, float, float]:
    """(best threshold, accuracy, refusal rate) for ``weights``: single questions vectorised over the
    thresholds, questions in parts one threshold at a time."""
    selector = EvidenceSelector()
    conf_a, right_a, conf_u = [], [], []
    answered_a = np.zeros(len(THRESHOLDS))
    kept_u = np.zeros(len(THRESHOLDS))
    n_a = n_u = 0
    for case, parts in features:
        selections = [selector.rank(f, weights) for f in parts]
        answerable = case.category == "answerable"
        n_a += answerable
        n_u += not answerable
        if len(selections) == 1:
            s = selections[0]
            if answerable:
                said = " ".join(extractive_sentences(s.answer))
                conf_a.append(s.confidence if s.answer else -1.0)
                right_a.append(bool(s.answer) and holds_all(said, case.expect))
            else:
                conf_u.append(s.confidence if s.answer else -1.0)
            continue
        memo: dict[Any, bool] = {}
        for k, t in enumerate(THRESHOLDS):
            answered, ok = _outcome(case, selections, float(t), part_ratio, memo)
            answered_a[k] += ok
            kept_u[k] += not answerable and not answered
    ca, ra, cu = np.array(conf_a), np.array(right_a, dtype=bool), np.array(conf_u)
    right = ((ca[None, :] >= THRESHOLDS[:, None]) & ra[None, :]).sum(1) + answered_a
    refused = (cu[None, :] < THRESHOLDS[:, None]).sum(1) + kept_u
    sweep = [
        (float(t), r / max(1, n_a), u / max(1, n_u))
        for t, r, u in zip(THRESHOLDS, right, refused, strict=True)
    ]
    top = max(_objective(a, r) for _, a, r in sweep)
    best = [row for row in sweep if _objective(row[1], row[2]) == top]
    # The middle of the best run of thresholds, not its edge: the margin on both sides is what carries over.
    t = round((best[0][0] + best[-1][0]) / 2, 3)
    return (t, best[0][1], best[0][2])


def _objective(accuracy: float, refused: float) -> tuple[float, float]:
    """Both targets are ">= 0.9": the weaker of the two first, then their sum."""
    return (round(min(accuracy, refused), 4), round(accuracy + refused, 4))


def show(features: Features, weights: SelectionWeights, t: float, part_ratio: float) -> None:
    """Each dev question's confidence under ``weights``, lowest first (A: answerable, U: must refuse)."""
    selector = EvidenceSelector()
    rows = []
    for case, parts in features:
        selection = combine_parts([selector.rank(f, weights) for f in parts], t, part_ratio)
        said = " ".join(extractive_sentences(selection.answer))
        right = case.category != "answerable" or holds_all(said, case.expect)
        rows.append(
            (
                selection.confidence,
                "A" if case.category == "answerable" else "U",
                right,
                case,
                selection,
                said,
            )
        )
    for confidence, label, right, case, s, said in sorted(rows, key=lambda r: r[0]):
        print(
            f"  {confidence:.3f} {label}{'' if right else ' WRONG'} {case.id:10} cov={s.coverage:.2f} "
            f"names={s.unknown_names} | {case.ask[:50]} -> {said[:60]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top-k", type=int, default=AgentConfig().retrieval_top_k)
    parser.add_argument(
        "--show", action="store_true", help="print each dev question under the configured weights"
    )
    parser.add_argument("--no-embedder", action="store_true", help="rank without MiniLM (semantic weight 0)")
    parser.add_argument(
        "--splits",
        default="dev,test,test2",
        help=f"tuning splits (round 2 tunes on dev, test and test2; never {HELD_OUT})",
    )
    args = parser.parse_args()
    splits = tuple(args.splits.split(","))
    if HELD_OUT in splits:
        parser.error(f"{HELD_OUT} is the held-out split: it is never used for tuning")
    features = asyncio.run(dev_features(args.top_k, not args.no_embedder, splits))
    n_a = sum(c.category == "answerable" for c, _ in features)
    print(f"{'+'.join(splits)}: {n_a} answerable, {len(features) - n_a} unanswerable questions")
    results = []
    semantic_weights = [0.0] if args.no_embedder else [0.5, 0.6, 0.7, 0.8]
    grid = itertools.product(
        semantic_weights,
        [0.0, 0.1],  # answer_type
        [0.0, 0.2, 0.3, 0.4],  # specific_type
        [0.0, 0.1],  # coverage
        [0.0, 0.1],  # unknown_name
        [0.6, 1.0],  # part_confidence_ratio
        [0.0, 0.5, 1.0, 1.5],  # margin
    )
    for semantic, answer_type, specific, coverage, unknown, part_ratio, margin in grid:
        lexical = round(1 - semantic - answer_type, 2)
        if lexical < 0.1:
            continue
        weights = SelectionWeights(semantic, lexical, answer_type, coverage, unknown, specific, margin)
        t, accuracy, refused = score(features, weights, part_ratio)
        simplicity = sum(
            [coverage > 0, unknown > 0, answer_type > 0, specific > 0, part_ratio < 1, margin > 0]
        )
        results.append(
            (_objective(accuracy, refused), -simplicity, weights, t, accuracy, refused, part_ratio)
        )
    results.sort(key=lambda r: (r[0], r[1]), reverse=True)
    for _, _, w, t, accuracy, refused, part_ratio in results[:12]:
        print(
            f"  accuracy {accuracy:.3f} refusals {refused:.3f} min_confidence {t:.3f} | semantic {w.semantic} "
            f"lexical {w.lexical} answer_type {w.answer_type} specific_type {w.specific_type} coverage "
            f"{w.coverage} unknown_name {w.unknown_name} margin {w.margin} part_ratio {part_ratio}"
        )
    current = AgentConfig().grounding
    now = SelectionWeights(
        current.semantic_weight, current.lexical_weight, current.answer_type_weight,
        current.coverage_weight, current.unknown_name_weight, current.specific_type_weight, current.margin_weight,
    )  # fmt: skip
    if args.show:
        show(features, now, current.min_confidence, current.part_confidence_ratio)
    t, accuracy, refused = score(features, now, current.part_confidence_ratio)
    print(
        f"configured weights: best threshold {t:.3f} (accuracy {accuracy:.3f}, refusals {refused:.3f}); "
        f"configured min_confidence {current.min_confidence}"
    )
    _, _, w, t, accuracy, refused, part_ratio = results[0]
    print(
        json.dumps(
            {
                "splits": list(splits),
                "min_confidence": t,
                "accuracy": round(accuracy, 4),
                "unanswerable_refusal_rate": round(refused, 4),
                "part_confidence_ratio": part_ratio,
                **w.__dict__,
            }
        )
    )


if __name__ == "__main__":
    main()
