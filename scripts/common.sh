# Shared helpers for service scripts. Sourced, not executed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${VOICE_AGENT_CACHE:-$HOME/.cache/voice-agent}"
RUN_DIR="${VOICE_AGENT_RUN_DIR:-$ROOT/.run}"
mkdir -p "$CACHE" "$RUN_DIR"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
# wait_port HOST PORT SECONDS: bounded wait for a TCP listener.
wait_port() {
  local host=$1 port=$2 secs=$3 i
  for ((i = 0; i < secs * 4; i++)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.25
  done
  return 1
}
