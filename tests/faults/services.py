"""Services the fault suite owns, so it can stop, kill and restart them without touching the session's
shared ones: a PostgreSQL (pgvector) on a fixed port, a RocketMQ broker, an Ollama server. Each is started
with the same script as the shared fixtures and stopped by its own process id."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.fixtures import wait_gone
from tests.fixtures.ollama import RUN_DIR as OLLAMA_RUN_DIR
from tests.fixtures.ollama import _free_port, _run
from tests.fixtures.rocketmq import RocketMQBroker

ROOT = Path(__file__).resolve().parents[2]
PG_SCRIPT = ROOT / "scripts" / "postgres.sh"


class OwnPostgres:
    """PostgreSQL with pgvector in a temporary data directory, always on the same port (clients reconnect
    to the same DSN after a restart)."""

    def __init__(self) -> None:
        self.base = tempfile.mkdtemp(prefix="voice-agent-faults-pg-")
        os.chmod(self.base, 0o755)  # postgres runs as an unprivileged user when tests run as root
        self.data = os.path.join(self.base, "data")
        self.port = _free_port()
        self.dsn = ""

    def start(self) -> float:
        """Start (initdb on first use); returns the seconds it took."""
        t0 = time.monotonic()
        proc = subprocess.run(
            ["bash", str(PG_SCRIPT), "start", self.data, str(self.port)],
            capture_output=True, text=True, timeout=90, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"postgres start failed:\n{proc.stderr[-3000:]}")
        self.dsn = proc.stdout.strip().splitlines()[-1]
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return time.monotonic() - t0

    def pid(self) -> int:
        return int(Path(self.data, "postmaster.pid").read_text().splitlines()[0])

    def stop(self) -> None:
        """Fast shutdown (what an operator's restart or a failover does)."""
        subprocess.run(["bash", str(PG_SCRIPT), "stop", self.data], capture_output=True, timeout=60, check=False)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash); its backends exit when they notice."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        time.sleep(1.0)  # backends notice the postmaster is gone and exit
        Path(self.data, "postmaster.pid").unlink(missing_ok=True)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class OwnBroker(RocketMQBroker):
    """A RocketMQ name server + broker/proxy of the fault suite's own (``kill_broker``, ``start_broker``)."""

    def __init__(self) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="voice-agent-faults-rmq-")))

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)


class OwnOllama:
    """An Ollama server with model ``smollm2`` on its own port (``scripts/ollama.sh``)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.host = f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        t0 = time.monotonic()
        _run("build", timeout=1800)  # cached
        _run("start", str(self.port), timeout=90)
        _run("create-model", str(self.port), timeout=180)
        return time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL the server and the model runner it started (a crash of the model server)."""
        import psutil

        pid = int((OLLAMA_RUN_DIR / f"ollama-{self.port}.pid").read_text().strip())
        runners = psutil.Process(pid).children(recursive=True)
        os.kill(pid, signal.SIGKILL)
        for runner in runners:
            runner.kill()
        wait_gone(pid)
        (OLLAMA_RUN_DIR / f"ollama-{self.port}.pid").unlink(missing_ok=True)

    def restart(self) -> float:
        t0 = time.monotonic()
        _run("start", str(self.port), timeout=90)
        return time.monotonic() - t0

    def destroy(self) -> None:
        _run("stop", str(self.port), timeout=60)
        (OLLAMA_RUN_DIR / f"ollama-{self.port}.log").unlink(missing_ok=True)


class SmallDisk:
    """A size-limited tmpfs mounted for the test (``mount`` needs root or CAP_SYS_ADMIN: ``mount()``
    says why not when it cannot), that ``fill()`` fills to the last byte with a ballast file (writes then
    fail with ENOSPC, SQLite's with "database or disk is full") and ``free()`` empties again."""

    def __init__(self, size_mb: int) -> None:
        self.size_mb = size_mb
        self.path = Path(tempfile.mkdtemp(prefix="voice-agent-faults-disk-"))
        self.ballast = self.path / "ballast"
        self.mounted = False

    def mount(self) -> str | None:
        """Mounts; returns None, or why it could not (the caller skips)."""
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs", str(self.path)],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if proc.returncode != 0:
            return f"cannot mount a {self.size_mb} MB tmpfs (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}"
        self.mounted = True
        return None

    def fill(self) -> int:
        """Write ballast until the disk refuses more; returns the bytes written."""
        written = 0
        chunk = b"\0" * 65536
        with open(self.ballast, "ab", buffering=0) as f:
            while True:
                try:
                    n = f.write(chunk)
                except OSError:
                    n = 0
                if not n:
                    try:
                        f.write(b"\0")  # the last bytes, to the very end
                        written += 1
                        continue
                    except OSError:
                        return written
                written += n

    def free(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def destroy(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30, check=False)
        shutil.rmtree(self.path, ignore_errors=True)
