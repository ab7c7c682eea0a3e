#!/usr/bin/env bash
# Neo4j 5.26 Community, jars from Maven Central (infra/neo4j/pom.xml), run straight from the jars
# (org.neo4j.server.CommunityEntryPoint) under OpenJDK 17. Bolt on 127.0.0.1:${BLOOP_NEO4J_BOLT_PORT:-7687},
# HTTP on 127.0.0.1:${BLOOP_NEO4J_HTTP_PORT:-7474}. Auth on: user neo4j, password
# ${BLOOP_NEO4J_PASSWORD:-bloop-neo4j-pass} (min. 8 characters), set with neo4j-admin's
# `dbms set-initial-password` before the first start; it only takes effect on a fresh store,
# so `wipe` after changing it. Home (data, logs) is the run dir: kept across stop/start.
NAME=neo4j
source "$(dirname "$0")/lib.sh"
BOLT_PORT="${BLOOP_NEO4J_BOLT_PORT:-7687}"
HTTP_PORT="${BLOOP_NEO4J_HTTP_PORT:-7474}"
PASSWORD="${BLOOP_NEO4J_PASSWORD:-bloop-neo4j-pass}"
POM="$INFRA_DIR/neo4j/pom.xml"
JAVA_HOME_17=/usr/lib/jvm/java-17-openjdk-amd64
if [ -x "$JAVA_HOME_17/bin/java" ]; then JAVA="$JAVA_HOME_17/bin/java"; export JAVA_HOME="$JAVA_HOME_17"; else JAVA=java; fi
# What Neo4j's own launcher passes to the JVM (minus AlwaysPreTouch, which slows the start).
JVM_FLAGS=(-XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -XX:+UnlockExperimentalVMOptions
  -XX:+TrustFinalNonStaticFields -XX:+DisableExplicitGC -XX:+ExitOnOutOfMemoryError
  -Djdk.nio.maxCachedBufferSize=1024 -Dio.netty.tryReflectionSetAccessible=true
  -Djdk.tls.ephemeralDHKeySize=2048 -Djdk.tls.rejectClientInitiatedRenegotiation=true
  -XX:+UnlockDiagnosticVMOptions -XX:+DebugNonSafepoints
  --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED -Dlog4j2.disable.jmx=true -Dfile.encoding=UTF-8)

libs_dir() { printf '%s/libs' "$(cache_dir)"; }

do_install() { maven_libs "$POM" Neo4j; }

write_config() { # home
  local home="$1"
  mkdir -p "$home/conf" "$home/data" "$home/logs" "$home/run" "$home/plugins" "$home/import"
  cat >"$home/conf/neo4j.conf" <<CONF
server.directories.data=$home/data
server.directories.logs=$home/logs
server.directories.run=$home/run
server.directories.plugins=$home/plugins
server.directories.import=$home/import
server.default_listen_address=127.0.0.1
server.default_advertised_address=127.0.0.1
server.bolt.enabled=true
server.bolt.listen_address=127.0.0.1:$BOLT_PORT
server.bolt.advertised_address=127.0.0.1:$BOLT_PORT
server.bolt.tls_level=DISABLED
server.http.enabled=true
server.http.listen_address=127.0.0.1:$HTTP_PORT
server.http.advertised_address=127.0.0.1:$HTTP_PORT
server.https.enabled=false
dbms.security.auth_enabled=true
server.memory.heap.initial_size=256m
server.memory.heap.max_size=512m
server.memory.pagecache.size=128m
dbms.memory.transaction.total.max=256m
dbms.usage_report.enabled=false
db.tx_log.rotation.retention_policy=1 files
# Bolt's network threads otherwise idle 5s each on shutdown (the store is closed before that).
internal.dbms.bolt.netty_server_shutdown_quiet_period=0
CONF
}

do_start() {
  local home log_lines deadline
  home="$(run_dir)"
  write_config "$home"
  if [ ! -d "$home/data/databases/system" ]; then
    log "fresh store: setting the initial password for user neo4j"
    NEO4J_HOME="$home" NEO4J_CONF="$home/conf" "$JAVA" -Xmx256m "${JVM_FLAGS[@]}" -cp "$(libs_dir)/*" \
      org.neo4j.cli.AdminTool dbms set-initial-password "$PASSWORD" >>"$home/log" 2>&1 \
      || { tail -n 20 "$home/log" >&2; die "set-initial-password failed"; }
  fi
  touch "$home/logs/neo4j.log"; log_lines="$(wc -l <"$home/logs/neo4j.log")"
  start_bg "$JAVA" -Xms256m -Xmx512m "${JVM_FLAGS[@]}" -cp "$(libs_dir)/*" \
    org.neo4j.server.CommunityEntryPoint --home-dir="$home" --config-dir="$home/conf"
  wait_port 127.0.0.1 "$BOLT_PORT" 120
  # Bolt opens a moment before the HTTP connector and the databases are all up: wait for the
  # "Started." line the server writes to logs/neo4j.log (its console output goes there too).
  deadline=$((SECONDS + 120))
  until logged_since "$home/logs/neo4j.log" "$log_lines" 'INFO  Started\.$'; do
    is_running || { tail -n 30 "$home/logs/neo4j.log" >&2; die "neo4j exited"; }
    [ $SECONDS -ge $deadline ] && { tail -n 30 "$home/logs/neo4j.log" >&2; die "neo4j not started after 120s"; }
    sleep 0.3
  done
  log "up: bolt://127.0.0.1:$BOLT_PORT, http://127.0.0.1:$HTTP_PORT"
}

do_stop() {
  # TERM lets Neo4j check-point and close the store; KILL only after 60s.
  stop_bg 60
}

main "$@"
