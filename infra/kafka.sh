#!/usr/bin/env bash
# Apache Kafka 3.9 in KRaft mode (one node is broker and controller), jars from Maven Central
# (infra/kafka/pom.xml). PLAINTEXT on 127.0.0.1:${BLOOP_KAFKA_PORT:-9092}, controller on
# 127.0.0.1:${BLOOP_KAFKA_CONTROLLER_PORT:-9093}. The log dir is formatted once (fresh cluster id
# after each wipe) and kept across stop/start, so messages survive a broker restart.
NAME=kafka
source "$(dirname "$0")/lib.sh"
PORT="${BLOOP_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${BLOOP_KAFKA_CONTROLLER_PORT:-9093}"
POM="$INFRA_DIR/kafka/pom.xml"
JAVA_HOME_17=/usr/lib/jvm/java-17-openjdk-amd64
if [ -x "$JAVA_HOME_17/bin/java" ]; then JAVA="$JAVA_HOME_17/bin/java"; export JAVA_HOME="$JAVA_HOME_17"; else JAVA=java; fi

libs_dir() { printf '%s/libs' "$(cache_dir)"; }

do_install() { maven_libs "$POM" Kafka; }

write_config() { # dir
  local dir="$1"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=168
# After a hard kill the restarted broker must wait for its old registration to expire: keep it short.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
PROPS
  cat >"$dir/log4j.properties" <<'PROPS'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.controller=INFO
PROPS
}

java_cmd() { # the JVM command line, before the heap flags and the main class
  JAVA_CMD=("$JAVA" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j.configuration="file:$(run_dir)/log4j.properties" -Dkafka.logs.dir="$(run_dir)"
    -cp "$(libs_dir)/*")
}

do_start() {
  local dir cluster_id log_lines deadline
  dir="$(run_dir)"
  write_config "$dir"
  java_cmd
  if [ ! -f "$dir/data/meta.properties" ]; then
    # 16 random bytes as unpadded url-safe base64: the cluster id format Kafka expects. One id in
    # 64 starts with "-", which the option parser takes for a flag unless it is joined by "=".
    cluster_id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    log "formatting storage (cluster id $cluster_id)"
    "${JAVA_CMD[@]}" -Xmx256m kafka.tools.StorageTool format --ignore-formatted --cluster-id="$cluster_id" \
      -c "$dir/server.properties" >>"$dir/log" 2>&1 || { tail -n 20 "$dir/log" >&2; die "format failed"; }
  fi
  touch "$dir/log"; log_lines="$(wc -l <"$dir/log")"
  start_bg "${JAVA_CMD[@]}" -Xms128m -Xmx512m kafka.Kafka "$dir/server.properties"
  wait_port 127.0.0.1 "$PORT" 90
  # The port opens before the broker has caught up with the metadata log: wait for the startup
  # line, then make sure a metadata request (kafka-topics --list) really succeeds.
  deadline=$((SECONDS + 90))
  until logged_since "$dir/log" "$log_lines" 'Kafka Server started'; do
    is_running || { tail -n 30 "$dir/log" >&2; die "broker exited"; }
    [ $SECONDS -ge $deadline ] && { tail -n 30 "$dir/log" >&2; die "broker not started after 90s"; }
    sleep 0.3
  done
  until timeout 30 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -cp "$(libs_dir)/*" \
      org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" --list >/dev/null 2>>"$dir/log"; do
    is_running || { tail -n 30 "$dir/log" >&2; die "broker exited"; }
    [ $SECONDS -ge $deadline ] && die "broker does not answer metadata requests"
    sleep 1
  done
  log "up on 127.0.0.1:$PORT (controller 127.0.0.1:$CONTROLLER_PORT)"
}

do_stop() {
  # TERM runs Kafka's controlled shutdown (flushes logs); KILL only after 60s.
  stop_bg 60
}

main "$@"
