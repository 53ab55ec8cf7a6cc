#!/usr/bin/env bash
# coturn (Debian `coturn`) on loopback for ICE/TURN tests and local trials.
#   scripts/coturn.sh start [PORT]   -> turn:127.0.0.1:PORT, user $TURN_USER / $TURN_PASSWORD
#   TURN_AUTH_SECRET=s scripts/coturn.sh start [PORT]   -> ephemeral credentials only (TURN REST,
#                                       use-auth-secret: username "<expiry>:<user>", HMAC-SHA1 password)
#   scripts/coturn.sh stop
source "$(dirname "$0")/common.sh"
PORT="${2:-${TURN_PORT:-3478}}"
TURN_USER="${TURN_USER:-caller}"
TURN_PASSWORD="${TURN_PASSWORD:-turn-secret}"
PID_FILE="$RUN_DIR/coturn-$PORT.pid"
LOG_FILE="$RUN_DIR/coturn-$PORT.log"

case "${1:-}" in
  start)
    command -v turnserver >/dev/null || { log "coturn missing: apt-get install coturn"; exit 1; }
    if [[ -n "${TURN_AUTH_SECRET:-}" ]]; then
      AUTH=(--use-auth-secret --static-auth-secret="$TURN_AUTH_SECRET")
    else
      AUTH=(--lt-cred-mech --user="$TURN_USER:$TURN_PASSWORD")
    fi
    turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$PORT" \
      "${AUTH[@]}" --realm=voice-agent.test --allow-loopback-peers \
      --no-tls --no-dtls --no-cli --min-port=49160 --max-port=49200 --log-file="$LOG_FILE" --simple-log \
      >/dev/null 2>&1 &
    echo $! >"$PID_FILE"
    # coturn answers STUN on UDP only with these flags, so a TCP probe cannot be used: check it stays up.
    sleep 1
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      log "turnserver exited at start; log:"; cat "$LOG_FILE"* >&2 2>/dev/null || true; exit 1
    fi
    echo "turn:127.0.0.1:$PORT?transport=udp"
    ;;
  stop)
    [[ -f "$PID_FILE" ]] && kill "$(cat "$PID_FILE")" 2>/dev/null || true
    rm -f "$PID_FILE"
    ;;
  *) echo "usage: $0 start|stop [PORT]" >&2; exit 2 ;;
esac
