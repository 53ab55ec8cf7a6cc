"""``DiskSpool``: what could not be written while a database or the broker was away, kept on local disk and
handed back, oldest first, once it is back.

Items are JSON objects, one per line, in segment files ``<name>/<number>.jsonl``. ``put`` appends to the
newest segment (a new one every ``segment_bytes``) and fsyncs, so an item survives a crash of the node;
``drain(send)`` seals the current segment, sends the items of each sealed segment in order and deletes the
segment once all were sent; when ``send`` fails the rest of the segment is kept for the next drain. A
crash during a drain may send an item twice: what is spooled must be idempotent (a call record is an
upsert) or tolerate a repeat (a conversation event).

Bounded: past ``max_bytes`` on disk ``put`` refuses the item and counts it
(``voice_agent_spool_dropped_total``): a full spool must not fill the disk the node runs on. The file work
is blocking and runs in worker threads.

A full disk (the spool usually shares it with the SQLite files whose writes failed in the first place):
an item the disk refuses is kept in memory instead, within the same ``max_bytes``, and every later item
joins it there until a drain has sent them all (so items stay in order); a node stopped meanwhile writes
them to disk if it can by then. Any part of a line the disk took before refusing the rest is cut off
again, so a torn line never swallows the next item.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

SPOOL_ITEMS = Gauge("voice_agent_spool_items", "Items waiting in an outage spool", ["spool"])
SPOOL_DROPPED = Counter("voice_agent_spool_dropped_total", "Items refused by a full outage spool", ["spool"])
SPOOL_REPLAYED = Counter("voice_agent_spool_replayed_total", "Spooled items sent once the target was back", ["spool"])


class DiskSpool:
    def __init__(
        self, directory: str | Path, name: str, max_bytes: int = 64 << 20, segment_bytes: int = 1 << 20
    ) -> None:
        self.name = name
        self.path = Path(directory) / name
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._drain_lock = asyncio.Lock()
        self.path.mkdir(parents=True, exist_ok=True)
        self._items = sum(_count_lines(p) for p in self._segments())
        self._current = max((int(p.stem) for p in self._segments()), default=0) + 1
        self._memory: list[bytes] = []  # lines the disk refused (full), oldest first
        SPOOL_ITEMS.labels(name).set(self._items)

    def __len__(self) -> int:
        """Items waiting (spooled and not yet sent), on disk or held in memory."""
        return self._items + len(self._memory)

    @property
    def in_memory(self) -> int:
        """Items the disk refused, waiting in memory."""
        return len(self._memory)

    async def put(self, item: dict[str, Any]) -> bool:
        """Keep ``item``; False when the spool is full or the disk refused it (the item is lost: counted
        and logged)."""
        return await asyncio.to_thread(self._append, item)

    async def drain(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> int:
        """Send every spooled item, oldest first, with ``send``; returns how many were sent. Stops at the
        first failure (logged), keeping that item and the ones after it."""
        async with self._drain_lock:
            await asyncio.to_thread(self._seal)
            sent = 0
            for segment in await asyncio.to_thread(self._sealed_segments):
                items = await asyncio.to_thread(_read_items, segment)
                for index, item in enumerate(items):
                    try:
                        await send(item)
                    except Exception as exc:  # noqa: BLE001 - the target is still away: keep the rest
                        log.info("spool %s: replay paused after %d items: %r", self.name, sent, exc)
                        await asyncio.to_thread(self._keep, segment, items[index:])
                        return sent
                    sent += 1
                    SPOOL_REPLAYED.labels(self.name).inc()
                await asyncio.to_thread(self._keep, segment, [])
            while self._memory:  # newer than every segment
                try:
                    await send(json.loads(self._memory[0]))
                except Exception as exc:  # noqa: BLE001 - still away: keep them
                    log.info("spool %s: replay from memory paused after %d items: %r", self.name, sent, exc)
                    return sent
                with self._lock:
                    self._memory.pop(0)
                sent += 1
                SPOOL_REPLAYED.labels(self.name).inc()
            SPOOL_ITEMS.labels(self.name).set(len(self))
            return sent

    def persist_memory(self) -> int:
        """Write the items held in memory to disk (at shutdown); returns how many are still only in memory
        (lost when the process ends: logged)."""
        with self._lock:
            while self._memory and self._write_line(self._memory[0]):
                self._memory.pop(0)
                self._items += 1
            if self._memory:
                log.error("spool %s: %d items could not be written to disk and are lost", self.name, len(self._memory))
            return len(self._memory)

    # -- blocking file work (worker threads) -----------------------------------------------------------
    def _segments(self) -> list[Path]:
        return sorted(self.path.glob("*.jsonl"), key=lambda p: int(p.stem))

    def _sealed_segments(self) -> list[Path]:
        with self._lock:
            return [p for p in self._segments() if int(p.stem) < self._current]

    def _seal(self) -> None:
        with self._lock:
            if (self.path / f"{self._current:012d}.jsonl").exists():
                self._current += 1

    def _append(self, item: dict[str, Any]) -> bool:
        line = (json.dumps(item, separators=(",", ":")) + "\n").encode()
        with self._lock:
            used = sum(p.stat().st_size for p in self._segments()) + sum(map(len, self._memory))
            if used + len(line) > self.max_bytes:
                return self._drop(f"spool full ({used} of {self.max_bytes} bytes)")
            if self._memory or not self._write_line(line):
                self._memory.append(line)
                log.warning("spool %s: disk refused the item; %d held in memory", self.name, len(self._memory))
            else:
                self._items += 1
            SPOOL_ITEMS.labels(self.name).set(len(self))
            return True

    def _write_line(self, line: bytes) -> bool:
        """Append ``line`` to the current segment and fsync; False (the segment as it was) when the disk
        refuses it."""
        segment = self.path / f"{self._current:012d}.jsonl"
        size = segment.stat().st_size if segment.exists() else 0
        if size >= self.segment_bytes:
            self._current += 1
            segment, size = self.path / f"{self._current:012d}.jsonl", 0
        fd = -1
        try:
            fd = os.open(segment, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            log.warning("spool %s: cannot write %s: %s", self.name, segment, exc)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # no torn line left behind
            return False
        finally:
            if fd >= 0:
                os.close(fd)
        return True

    def _drop(self, why: str) -> bool:
        SPOOL_DROPPED.labels(self.name).inc()
        log.error("spool %s: item dropped: %s", self.name, why)
        return False

    def _keep(self, segment: Path, rest: list[dict[str, Any]]) -> None:
        """After a drain of ``segment``: delete it, or rewrite it with the items not sent."""
        with self._lock:
            if rest:
                tmp = segment.with_suffix(".tmp")
                tmp.write_text("".join(json.dumps(i, separators=(",", ":")) + "\n" for i in rest))
                os.replace(tmp, segment)
            else:
                segment.unlink(missing_ok=True)
            self._items = sum(_count_lines(p) for p in self._segments())  # torn lines were skipped
            SPOOL_ITEMS.labels(self.name).set(self._items)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _read_items(path: Path) -> list[dict[str, Any]]:
    items = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except ValueError:  # a line torn by a crash mid-write: skip it, keep the rest
            log.error("spool file %s line %d is not JSON; skipped", path, number)
    return items


class SpoolReplayer:
    """Drains ``spool`` every ``retry_s`` while it holds items: ``kick()`` after each ``put`` (and once at
    start, for what a previous run left); ``cancel()`` stops it (the items stay on disk for the next run)."""

    def __init__(
        self, spool: DiskSpool, send: Callable[[dict[str, Any]], Awaitable[None]], retry_s: float = 5.0
    ) -> None:
        self.spool = spool
        self.send = send
        self.retry_s = retry_s
        self._task: asyncio.Task[None] | None = None
        self.recovered = asyncio.Event()  # set each time the spool became empty after holding items

    def kick(self) -> None:
        if len(self.spool) and (self._task is None or self._task.done()):
            self.recovered.clear()
            self._task = asyncio.create_task(self._run(), name=f"spool-replay-{self.spool.name}")

    async def _run(self) -> None:
        while len(self.spool):
            await asyncio.sleep(self.retry_s)
            try:
                sent = await self.spool.drain(self.send)
            except Exception:  # a bug in the replay must not end it silently: logged, retried
                log.exception("spool %s: replay failed", self.spool.name)
                continue
            if sent:
                log.info("spool %s: %d items replayed, %d waiting", self.spool.name, sent, len(self.spool))
        self.recovered.set()

    def cancel(self) -> None:
        """Stop replaying; what is left stays on disk for the next run."""
        if self._task is not None:
            self._task.cancel()
