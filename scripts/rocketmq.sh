#!/usr/bin/env bash
# RocketMQ 5 for development and tests: a name server plus broker+proxy in one JVM ("local" proxy mode),
# all on loopback, state under a run directory.
#
#   scripts/rocketmq.sh fetch            resolve the jars with Maven into $CACHE/rocketmq/<version>/lib
#   scripts/rocketmq.sh start            start namesrv, then broker+proxy; wait for ports and a produce/consume check
#   scripts/rocketmq.sh stop             stop both by pid
#   scripts/rocketmq.sh stop-broker      stop only broker+proxy (the store survives); start-broker brings it back
#   scripts/rocketmq.sh create-topic T   create/update NORMAL topics T and T_dlq on the running broker (mqadmin)
#   scripts/rocketmq.sh status
#
# Environment: RMQ_VERSION (5.3.3), RMQ_RUN_DIR ($RUN_DIR/rocketmq), RMQ_NAMESRV_PORT (9876),
# RMQ_BROKER_PORT (10911; the broker also binds port-2 and port+1), RMQ_PROXY_PORT (gRPC, 8081),
# RMQ_PROXY_REMOTING_PORT (8080), RMQ_TOPICS (extra topics created at first start, space separated),
# RMQ_START_TIMEOUT (seconds, 120), RMQ_STOP_GRACE (seconds between SIGTERM and SIGKILL, 30).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VERSION="${RMQ_VERSION:-5.3.3}"
LIB="$CACHE/rocketmq/$VERSION/lib"
RUN="${RMQ_RUN_DIR:-$RUN_DIR/rocketmq}"
NAMESRV_PORT="${RMQ_NAMESRV_PORT:-9876}"
BROKER_PORT="${RMQ_BROKER_PORT:-10911}"
PROXY_PORT="${RMQ_PROXY_PORT:-8081}"
PROXY_REMOTING_PORT="${RMQ_PROXY_REMOTING_PORT:-8080}"
START_TIMEOUT="${RMQ_START_TIMEOUT:-120}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BASE_TOPICS="voice_proactive voice_conversation knowledge_changes voice_health"
# RocketMQ's JVMs default to several GB of heap and direct memory; these machines are small and shared.
JAVA_COMMON=(-server -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -XX:-OmitStackTraceInFastThrow
  --add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED --add-exports java.base/sun.nio.ch=ALL-UNNAMED
  -Duser.home="$RUN/home" -Drocketmq.home.dir="$RUN")
NAMESRV_JAVA=(-Xms128m -Xmx256m -XX:MaxDirectMemorySize=64m)
BROKER_JAVA=(-Xms256m -Xmx512m -XX:MaxDirectMemorySize=256m)

fetch() {
  if [[ -n "$(ls "$LIB"/rocketmq-proxy-"$VERSION".jar 2>/dev/null)" ]]; then
    log "rocketmq $VERSION jars already in $LIB"
    return 0
  fi
  log "resolving rocketmq $VERSION with Maven into $LIB"
  mkdir -p "$LIB.tmp"
  mvn -q -f "$ROOT/scripts/rocketmq/pom.xml" -Drocketmq.version="$VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$LIB.tmp"
  rm -rf "$LIB" && mv "$LIB.tmp" "$LIB"
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The broker loads topics.json at start-up: writing it first avoids one mqadmin JVM per topic. The gRPC
# proxy checks the topic's message type, so every topic is declared NORMAL.
write_topics() {
  local cfg="$RUN/store/config/topics.json" t first=1
  [[ -f "$cfg" ]] && return 0
  mkdir -p "$(dirname "$cfg")"
  {
    echo '{"topicConfigTable":{'
    for t in $BASE_TOPICS ${RMQ_TOPICS:-}; do
      for name in "$t" "${t}_dlq"; do
        ((first)) || echo ','
        first=0
        printf '"%s":{"topicName":"%s","readQueueNums":2,"writeQueueNums":2,"perm":6,"topicFilterType":"SINGLE_TAG","topicSysFlag":0,"order":false,"attributes":{"message.type":"NORMAL"}}' "$name" "$name"
      done
    done
    echo '}}'
  } >"$cfg"
}

write_configs() {
  mkdir -p "$RUN/home" "$RUN/store/commitlog" "$RUN/logs"
  cat >"$RUN/namesrv.conf" <<CONF
listenPort=$NAMESRV_PORT
bindAddress=127.0.0.1
CONF
  cat >"$RUN/broker.conf" <<CONF
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
brokerRole=ASYNC_MASTER
flushDiskType=ASYNC_FLUSH
brokerIP1=127.0.0.1
listenPort=$BROKER_PORT
namesrvAddr=127.0.0.1:$NAMESRV_PORT
storePathRootDir=$RUN/store
storePathCommitLog=$RUN/store/commitlog
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
mapedFileSizeCommitLog=67108864
mapedFileSizeConsumeQueue=600000
mappedFileSizeTimerLog=8388608
timerMaxDelaySec=3600
diskMaxUsedSpaceRatio=95
# register with the name server at once instead of after the first 10 s period
skipPreOnline=true
# fewer pop-revive queues: less idle CPU and a much faster shutdown (each revive thread is joined)
reviveQueueNum=2
CONF
  cat >"$RUN/rmq-proxy.json" <<CONF
{
  "rocketMQClusterName": "DefaultCluster",
  "namesrvAddr": "127.0.0.1:$NAMESRV_PORT",
  "grpcServerPort": $PROXY_PORT,
  "remotingListenPort": $PROXY_REMOTING_PORT,
  "minInvisibleTimeMillsForRecv": 1000,
  "grpcClientConsumerMinLongPollingTimeoutMillis": 1000,
  "topicRouteServiceCacheExpiredSeconds": 5,
  "topicRouteServiceCacheRefreshSeconds": 1
}
CONF
  write_topics
}

start_namesrv() {
  pid_alive "$RUN/namesrv.pid" && { log "namesrv already running"; return 0; }
  ROCKETMQ_HOME="$RUN" nohup java "${JAVA_COMMON[@]}" "${NAMESRV_JAVA[@]}" -cp "$LIB/*" \
    org.apache.rocketmq.namesrv.NamesrvStartup -c "$RUN/namesrv.conf" >"$RUN/logs/namesrv.out" 2>&1 &
  echo $! >"$RUN/namesrv.pid"
  wait_port 127.0.0.1 "$NAMESRV_PORT" "$START_TIMEOUT" || {
    log "namesrv did not listen on $NAMESRV_PORT; see $RUN/logs/namesrv.out"; tail -30 "$RUN/logs/namesrv.out" >&2; return 1; }
}

start_broker() {
  pid_alive "$RUN/broker.pid" && { log "broker+proxy already running"; return 0; }
  ROCKETMQ_HOME="$RUN" nohup java "${JAVA_COMMON[@]}" "${BROKER_JAVA[@]}" -cp "$LIB/*" \
    org.apache.rocketmq.proxy.ProxyStartup -pm local -pc "$RUN/rmq-proxy.json" -bc "$RUN/broker.conf" \
    >"$RUN/logs/broker.out" 2>&1 &
  echo $! >"$RUN/broker.pid"
  wait_port 127.0.0.1 "$PROXY_PORT" "$START_TIMEOUT" || {
    log "proxy did not listen on $PROXY_PORT; see $RUN/logs/broker.out and $RUN/home/logs/rocketmqlogs"
    tail -30 "$RUN/logs/broker.out" >&2; return 1; }
  health
}

# Produce one message and consume it back through the gRPC proxy (the same path the server uses).
health() {
  timeout "$START_TIMEOUT" "$PYTHON" "$ROOT/scripts/rocketmq/healthcheck.py" "127.0.0.1:$PROXY_PORT" voice_health \
    >>"$RUN/logs/health.out" 2>&1 || {
    log "health check failed (produce/consume on voice_health); see $RUN/logs/health.out"
    tail -20 "$RUN/logs/health.out" >&2; return 1; }
}

stop_pid() {
  local f=$1 pid i
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for ((i = 0; i < ${RMQ_STOP_GRACE:-30} * 4; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then log "pid $pid still running after SIGTERM, killing"; kill -9 "$pid"; fi
  fi
  rm -f "$f"
}

case "${1:-}" in
  fetch) fetch ;;
  start)
    fetch
    t0=$(date +%s)
    write_configs
    start_namesrv
    start_broker
    log "rocketmq $VERSION up in $(($(date +%s) - t0)) s: gRPC proxy 127.0.0.1:$PROXY_PORT, namesrv 127.0.0.1:$NAMESRV_PORT, run dir $RUN"
    ;;
  start-broker) start_broker ;;
  stop-broker) stop_pid "$RUN/broker.pid" ;;
  stop) stop_pid "$RUN/broker.pid"; stop_pid "$RUN/namesrv.pid" ;;
  health) health ;;
  create-topic)
    shift
    for t in "$@" $(printf '%s_dlq ' "$@"); do
      java "${JAVA_COMMON[@]}" -Xmx128m -cp "$LIB/*" org.apache.rocketmq.tools.command.MQAdminStartup updateTopic \
        -n "127.0.0.1:$NAMESRV_PORT" -c DefaultCluster -t "$t" -r 2 -w 2 -a +message.type=NORMAL
    done
    ;;
  status)
    for p in namesrv broker; do
      if pid_alive "$RUN/$p.pid"; then echo "$p running (pid $(cat "$RUN/$p.pid"))"; else echo "$p stopped"; fi
    done
    ;;
  *) echo "usage: $0 fetch|start|stop|start-broker|stop-broker|health|create-topic TOPIC...|status" >&2; exit 2 ;;
esac
