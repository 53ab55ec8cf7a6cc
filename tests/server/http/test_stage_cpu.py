"""``voice_agent_stage_cpu_seconds_total``: CPU time attributed to the right stage, from real threads."""

from __future__ import annotations

import threading
import time

from agent.llm.accounting import tokens_evaluated
from server.http.stage_cpu import ThreadGroupCpu
from speech.threads import STT_THREADS, TTS_THREADS, name_this_thread, named_thread


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _thread(target, name: str | None = None) -> threading.Thread:  # type: ignore[no-untyped-def]
    thread = threading.Thread(target=target, name=name or "worker")
    thread.start()
    return thread


def test_a_stage_thread_keeps_its_time_after_it_ends_and_other_threads_count_for_nothing() -> None:
    groups = ThreadGroupCpu()
    before = groups.read()
    burnt = threading.Event()
    finish = threading.Event()

    def stt_worker() -> None:
        name_this_thread(STT_THREADS)
        _burn(0.3)
        burnt.set()
        finish.wait(10)

    stt = _thread(stt_worker)
    assert burnt.wait(10)
    _burn(0.3)  # this thread belongs to no stage
    while_running = groups.read()
    finish.set()
    stt.join()
    after_its_end = groups.read()

    assert while_running.get("stt", 0) - before.get("stt", 0) >= 0.29
    assert after_its_end.get("stt", 0) >= while_running.get("stt", 0)
    assert sum(after_its_end.values()) - sum(before.values()) < 0.3 + 0.1  # not this thread's 0.3 s


def test_threads_seen_while_running_are_counted_by_name() -> None:
    groups = ThreadGroupCpu()
    before = groups.read()
    go = threading.Event()
    done = threading.Event()

    def knowledge() -> None:
        _burn(0.2)
        go.set()
        done.wait(10)

    def tts_native() -> None:
        with named_thread(TTS_THREADS):
            pass
        name_this_thread(TTS_THREADS)
        _burn(0.2)
        done.wait(10)

    threads = [_thread(knowledge, name="knowledge-store_0"), _thread(tts_native)]
    assert go.wait(10)
    time.sleep(0.3)
    seen = groups.read()
    done.set()
    for thread in threads:
        thread.join()
    assert seen.get("retrieval", 0) - before.get("retrieval", 0) >= 0.19
    assert seen.get("tts", 0) - before.get("tts", 0) >= 0.19


def test_prompt_tokens_evaluated_are_those_past_the_cached_prefix() -> None:
    assert tokens_evaluated([], [1, 2, 3]) == 3
    assert tokens_evaluated([1, 2, 3, 9, 9], [1, 2, 3, 4, 5, 6]) == 3
    assert tokens_evaluated([1, 2, 3], [1, 2, 3]) == 0
    assert tokens_evaluated([7], [1, 2]) == 2
