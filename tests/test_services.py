"""Smoke tests of the real services the suite starts: each does real work with the official client.

The start-up time of each service is printed in the "service start-up" section of the pytest summary.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import ollama
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


def test_rocketmq_send_and_receive_with_the_official_client(
    rocketmq_endpoint: str, rocketmq_topic: str
) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/rocketmq/healthcheck.py"), rocketmq_endpoint, rocketmq_topic],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ollama_streams_a_chat_completion(ollama_server: str) -> None:
    client = ollama.Client(host=ollama_server)
    parts = [
        chunk.message.content
        for chunk in client.chat(
            model="smollm2",
            messages=[{"role": "user", "content": "Say hello."}],
            stream=True,
            options={"num_predict": 16},
        )
    ]
    assert len(parts) > 2 and "".join(parts).strip()


def test_postgres_stores_and_queries_nearest_vectors(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("DROP TABLE IF EXISTS smoke_items")
        conn.execute("CREATE TABLE smoke_items (name text, embedding vector(3))")
        conn.execute("INSERT INTO smoke_items VALUES ('x', '[1,0,0]'), ('y', '[0,1,0]'), ('z', '[0,0,1]')")
        rows = conn.execute(
            "SELECT name FROM smoke_items ORDER BY embedding <-> '[0.1,0.9,0.1]' LIMIT 2"
        ).fetchall()
        conn.execute("DROP TABLE smoke_items")
    assert rows[0][0] == "y"


def test_chromium_loads_a_page_and_reads_its_title(chromium: Any) -> None:
    with chromium.launch() as browser:
        page = browser.new_page()
        page.goto((ROOT / "web/static/index.html").as_uri())
        assert page.title() == "Voice agent call"


@pytest.mark.sip
def test_baresip_starts_on_new_ports_when_its_tls_port_is_taken(tmp_path: Path) -> None:
    """baresip binds TLS on its SIP port + 1, which the free-port check cannot see; another process holding
    it made a phone test fail with "Address already in use" on the shared machine."""
    import socket

    from tests.fixtures.baresip import Baresip
    from tests.speech.conftest import write_wav

    source = write_wav(tmp_path / "silence.wav", np.zeros(8000, np.int16), 8000)
    phone = Baresip(tmp_path / "phone", "tls", source, "<sip:{user}@127.0.0.1:{port}>;regint=0;answermode=auto")
    first = phone.sip_port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", first + 1))
        blocker.listen()
        try:
            phone.start()
            assert phone.sip_port != first and phone.uri.endswith(f":{phone.sip_port}")
            assert phone.process is not None and phone.process.running()
        finally:
            phone.stop()
