#!/usr/bin/env bash
# Builds llama-cpp-python once (about 3 minutes on 2 cores) and keeps the wheel in the cache.
source "$(dirname "$0")/common.sh"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
WHEELS="$CACHE/wheels"
mkdir -p "$WHEELS"
if ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  log "llama-cpp-python $VERSION wheel cached"
else
  log "building llama-cpp-python $VERSION (CPU) into $WHEELS"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
    ${PIP:-$ROOT/.venv/bin/pip} wheel --no-deps -w "$WHEELS" "llama-cpp-python==$VERSION" >&2
fi
echo "$WHEELS"
