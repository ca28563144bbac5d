#!/usr/bin/env bash
# deploy/local/infra.sh -- the project's real infrastructure on one machine, without Docker.
#
#   infra.sh up [component...]          start (default: all) and wait until each really answers
#   infra.sh down [component...]        stop what runs from our state dir (default: all)
#   infra.sh status                     one line per component
#   infra.sh prepare [component...]     only download/build into the cache (warms caches)
#   infra.sh reset-data [component...]  stop, then wipe the data dirs (default: all)
#
# Components, in start order (postgres before ferretdb; `up ferretdb` also starts postgres):
#   kafka     Apache Kafka 4.4.0 (KRaft, broker+controller) from Maven Central   127.0.0.1:9092 (+9093 controller)
#             SASL_PLAINTEXT, SCRAM-SHA-512, ACLs (principals and passwords below; `up`
#             creates the contract's topics and grants their ACLs as `admin`)
#   postgres  PostgreSQL from Debian (/usr/lib/postgresql/15/bin)                127.0.0.1:5432, user postgres, trust
#   ferretdb  FerretDB 1.24.2 (MongoDB wire protocol) on postgres, built from    127.0.0.1:27017
#             the Go module proxy with the patches in deploy/local/ferretdb/
#   mailpit   Mailpit v1.33.1 (SMTP sink + HTTP API), built with `go install`    SMTP 127.0.0.1:1025, HTTP 127.0.0.1:8025
#
# About the FerretDB patches (deploy/local/ferretdb/, applied in name order), one per concern:
#   1-index-lookups            `{_id: x}` and `{_id: {$in: [...]}}` as `_jsonb->'_id' = ...`, which
#                              the unique btree on `(_jsonb->'_id')` serves (upstream's `@>` is a
#                              sequential scan); equality on other keys served from GIN indexes
#   2-update-locks             each document locked for its read-apply-write update
#   3-one-pass-decoding        a stored document decoded in one pass, not once per level
#   4-leak-tracking-in-debug-builds  iterator leak tracking only in debug builds
#   5-single-statement-writes  one statement without BEGIN/COMMIT
#   6-exact-pushdown           sort, limit and count in PostgreSQL for queries that vouch for
#                              their filter
#   7-unique-updates           an update a unique index refuses is a duplicate key (E11000)
# Each file says what it changes, why, and which test checks it.
#
# Environment:
#   JM_STATE_DIR      data dirs, pid files, logs (default <repo>/.local; logs in logs/<component>.log)
#   JM_CACHE_DIR      downloads and builds (default ${XDG_CACHE_HOME:-~/.cache}/junipermarket)
#   JM_WAIT_SECONDS   how long `up` waits for a component to answer (default 60)
#   JM_FERRETDB_GOGC  Go GC target of FerretDB (default 400; Go's own default is 100)
#   JM_KAFKA_PORT JM_KAFKA_CONTROLLER_PORT JM_PG_PORT JM_FERRETDB_PORT JM_SMTP_PORT JM_MAILPIT_PORT
#                     ports (defaults 9092 9093 5432 27017 1025 8025), all on 127.0.0.1
#   JM_KAFKA_PASSWORD_<PRINCIPAL>  a Kafka principal's password (default <principal>-dev-secret),
#                     used when formatting the broker and, for ADMIN, to probe it and grant ACLs
#   JM_PG_BIN         PostgreSQL bin dir (default /usr/lib/postgresql/15/bin, else the newest installed)
#   INFRA_STARTED_FILE  if set, `up` writes there the components that THIS invocation started,
#                     one per line (so a caller such as `make test` can stop exactly those)
#
# Exit status: 0 on success; 1 with one line `infra: ...` on stderr on any failure. Every
# wait is bounded. If `up` fails, it stops again whatever it had started itself.
set -euo pipefail
shopt -s inherit_errexit

# ----------------------------------------------------------------------------- settings

readonly KAFKA_VERSION=4.4.0
readonly FERRETDB_VERSION=1.24.2
readonly MAILPIT_VERSION=1.33.1
readonly ALL_COMPONENTS=(kafka postgres ferretdb mailpit)

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
readonly SCRIPT_DIR REPO_ROOT

abs_path() { # make a path absolute without requiring it to exist
  case $1 in
    /*) printf '%s\n' "${1%/}" ;;
    *) printf '%s\n' "$PWD/${1%/}" ;;
  esac
}

STATE_DIR=$(abs_path "${JM_STATE_DIR:-$REPO_ROOT/.local}")
CACHE_DIR=$(abs_path "${JM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/junipermarket}")
readonly STATE_DIR CACHE_DIR
readonly LOG_DIR=$STATE_DIR/logs
readonly RUN_DIR=$STATE_DIR/run

readonly HOST=127.0.0.1
readonly KAFKA_PORT=${JM_KAFKA_PORT:-9092}
readonly KAFKA_CONTROLLER_PORT=${JM_KAFKA_CONTROLLER_PORT:-9093}
readonly PG_PORT=${JM_PG_PORT:-5432}
readonly FERRETDB_PORT=${JM_FERRETDB_PORT:-27017}
readonly SMTP_PORT=${JM_SMTP_PORT:-1025}
readonly MAILPIT_PORT=${JM_MAILPIT_PORT:-8025}
readonly WAIT_SECONDS=${JM_WAIT_SECONDS:-60}
readonly STOP_SECONDS=30   # SIGTERM grace period before SIGKILL
readonly BUILD_SECONDS=900 # upper bound for one download/build step

# SASL/SCRAM-SHA-512 principals (the contract's "Kafka access"), created when the storage is
# formatted; `admin` is the super user. Local passwords: <principal>-dev-secret, or
# JM_KAFKA_PASSWORD_<PRINCIPAL> (e.g. JM_KAFKA_PASSWORD_ADMIN) after a rotation.
readonly KAFKA_SUPER_USER=admin
readonly KAFKA_PRINCIPALS=(checkout orders invoicing payments notifications ops admin)

readonly KAFKA_POM=$SCRIPT_DIR/kafka/pom.xml
readonly KAFKA_LOG4J=$SCRIPT_DIR/kafka/log4j2.xml
# Applied in name order; each says what it changes, why, and which test checks it.
readonly FERRETDB_PATCHES=("$SCRIPT_DIR"/ferretdb/[0-9]-*.patch)

# ----------------------------------------------------------------------------- helpers

die() {
  printf 'infra: %s\n' "$*" >&2
  exit 1
}

say() { printf '%s\n' "$*"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# seconds since $1 (ms), one decimal
since() {
  local ms=$(($(now_ms) - $1))
  printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

short_sha256() { sha256sum | cut -c1-12; } # of stdin

kafka_password() { # principal
  local var="JM_KAFKA_PASSWORD_${1^^}"
  printf '%s' "${!var:-$1-dev-secret}"
}

need_cmd() { # command, what it is for
  command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH (needed for $2)"
}

is_component() {
  local c
  for c in "${ALL_COMPONENTS[@]}"; do [[ $c == "$1" ]] && return 0; done
  return 1
}

# Put the requested components in start order; validate names.
# Usage: select_components <add-dependencies 0|1> [names...]; result in SELECTED.
select_components() {
  local deps=$1 c
  shift
  local -A want=()
  if (($# == 0)); then
    for c in "${ALL_COMPONENTS[@]}"; do want[$c]=1; done
  fi
  for c in "$@"; do
    is_component "$c" || die "unknown component '$c' (known: ${ALL_COMPONENTS[*]})"
    want[$c]=1
  done
  if ((deps)) && [[ -n ${want[ferretdb]:-} ]]; then want[postgres]=1; fi
  SELECTED=()
  for c in "${ALL_COMPONENTS[@]}"; do
    if [[ -n ${want[$c]:-} ]]; then SELECTED+=("$c"); fi
  done
}

ports_of() {
  case $1 in
    kafka) echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" ;;
    postgres) echo "$PG_PORT" ;;
    ferretdb) echo "$FERRETDB_PORT" ;;
    mailpit) echo "$SMTP_PORT $MAILPIT_PORT" ;;
  esac
}

port_env_of() {
  case $1 in
    "$KAFKA_PORT") echo JM_KAFKA_PORT ;;
    "$KAFKA_CONTROLLER_PORT") echo JM_KAFKA_CONTROLLER_PORT ;;
    "$PG_PORT") echo JM_PG_PORT ;;
    "$FERRETDB_PORT") echo JM_FERRETDB_PORT ;;
    "$SMTP_PORT") echo JM_SMTP_PORT ;;
    "$MAILPIT_PORT") echo JM_MAILPIT_PORT ;;
  esac
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  # shellcheck disable=SC2016 # $0 and $1 are for the inner shell
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

# Fail (one line) if one of the ports is taken; called only when our component is not running.
require_free_ports() { # component port...
  local comp=$1 port
  shift
  for port in "$@"; do
    if port_in_use "$port"; then
      die "port $port is taken by another process (not our $comp); stop it or set $(port_env_of "$port") to another port"
    fi
  done
}

# Readiness probes, dependency-free (python3 standard library only):
#   kafka HOST PORT [USER PASSWORD]  a Metadata request (v4) answered with at least one broker,
#                     after a SASL SCRAM-SHA-512 login when USER is given
#   mongo HOST PORT   OP_MSG {ping: 1, $db: "admin"} answered with ok: 1 (FerretDB's ping queries PostgreSQL)
#   http URL          HTTP 200
read -r -d '' PROBE_PY <<'PY' || true
import base64, hashlib, hmac, json, os, socket, struct, sys, urllib.request

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf

def kafka_call(s, api_key, version, body, corr):
    client = b"junipermarket-infra"
    req = struct.pack(">hhih", api_key, version, corr, len(client)) + client + body
    s.sendall(struct.pack(">i", len(req)) + req)
    (n,) = struct.unpack(">i", recv_exact(s, 4))
    data = recv_exact(s, n)
    if struct.unpack(">i", data[:4])[0] != corr:
        raise ValueError("wrong correlation id")
    return data[4:]

def kstr(text):
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw

def kbytes(raw):
    return struct.pack(">i", len(raw)) + raw

def scram_sha512(s, user, password):
    # SaslHandshake v1, then RFC 5802 over SaslAuthenticate v0 (Kafka's SCRAM-SHA-512)
    reply = kafka_call(s, 17, 1, kstr("SCRAM-SHA-512"), 1)
    if struct.unpack(">h", reply[:2])[0] != 0:
        raise ValueError("SCRAM-SHA-512 not enabled")
    nonce = base64.b64encode(os.urandom(24)).decode()
    bare = f"n={user},r={nonce}"
    def authenticate(message, corr):
        data = kafka_call(s, 36, 0, kbytes(message.encode()), corr)
        error, = struct.unpack(">h", data[:2])
        mlen, = struct.unpack(">h", data[2:4])
        rest = data[4 + max(mlen, 0):]
        if error != 0:
            raise ValueError("authentication failed")
        (blen,) = struct.unpack(">i", rest[:4])
        return rest[4:4 + blen].decode()
    server_first = authenticate("n,," + bare, 2)
    first = dict(p.split("=", 1) for p in server_first.split(","))
    if not first["r"].startswith(nonce):
        raise ValueError("server nonce")
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(first["s"]), int(first["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    final_bare = f"c=biws,r={first['r']}"
    auth_message = f"{bare},{server_first},{final_bare}".encode()
    signature = hmac.new(hashlib.sha512(client_key).digest(), auth_message, "sha512").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    authenticate(f"{final_bare},p={proof}", 3)

def kafka(host, port, user="", password=""):
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.settimeout(2)
        if user:
            scram_sha512(s, user, password)
        data = kafka_call(s, 3, 4, struct.pack(">ib", -1, 0), 42)
    _throttle, brokers = struct.unpack(">ii", data[:8])
    return brokers >= 1

def bson_ok(doc):
    i = 4
    while i < len(doc) - 1:
        t = doc[i]
        end = doc.index(b"\x00", i + 1)
        name = doc[i + 1:end]
        i = end + 1
        if t == 0x01:
            val, size = struct.unpack("<d", doc[i:i + 8])[0], 8
        elif t == 0x10:
            val, size = struct.unpack("<i", doc[i:i + 4])[0], 4
        elif t == 0x12:
            val, size = struct.unpack("<q", doc[i:i + 8])[0], 8
        elif t == 0x08:
            val, size = doc[i], 1
        elif t == 0x02:
            val, size = None, 4 + struct.unpack("<i", doc[i:i + 4])[0]
        elif t in (0x03, 0x04):
            val, size = None, struct.unpack("<i", doc[i:i + 4])[0]
        elif t == 0x0A:
            val, size = None, 0
        else:
            return False
        if name == b"ok":
            return val == 1
        i += size
    return False

def mongo(host, port):
    elems = b"\x10ping\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    doc = struct.pack("<i", len(elems) + 5) + elems + b"\x00"
    body = struct.pack("<I", 0) + b"\x00" + doc
    msg = struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.settimeout(2)
        s.sendall(msg)
        length, _req, _resp, opcode = struct.unpack("<iiii", recv_exact(s, 16))
        data = recv_exact(s, length - 16)
    if opcode != 2013 or data[4] != 0:
        return False
    return bson_ok(data[5:])

def http(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=2) as r:
        return r.status == 200

try:
    ok = {"kafka": kafka, "mongo": mongo, "http": http}[sys.argv[1]](*sys.argv[2:])
except Exception:
    ok = False
sys.exit(0 if ok else 1)
PY
readonly PROBE_PY

probe() { python3 -c "$PROBE_PY" "$@"; }

answers() { # component
  case $1 in
    kafka) probe kafka "$HOST" "$KAFKA_PORT" "$KAFKA_SUPER_USER" "$(kafka_password "$KAFKA_SUPER_USER")" ;;
    postgres) "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2 ;;
    ferretdb) probe mongo "$HOST" "$FERRETDB_PORT" ;;
    mailpit) probe http "http://$HOST:$MAILPIT_PORT/api/v1/info" ;;
  esac
}

where_of() {
  case $1 in
    kafka) echo "$HOST:$KAFKA_PORT" ;;
    postgres) echo "$HOST:$PG_PORT" ;;
    ferretdb) echo "$HOST:$FERRETDB_PORT" ;;
    mailpit) echo "$HOST:$SMTP_PORT (SMTP), http://$HOST:$MAILPIT_PORT" ;;
  esac
}

log_of() { echo "$LOG_DIR/$1.log"; }

# Keep one previous log, start a fresh one with a header line.
open_log() { # component
  local log
  log=$(log_of "$1")
  mkdir -p "$LOG_DIR"
  if [[ -s $log ]]; then mv -f "$log" "$log.1"; fi
  printf '==== %s infra.sh: starting %s\n' "$(date -Is)" "$1" >"$log"
}

# ----------------------------------------------------------------------------- temp dirs, traps

TEMP_DIRS=()
ROLLBACK=() # components this `up` launched, stopped again if `up` fails

on_exit() {
  local rc=$? d c i
  trap - EXIT INT TERM
  if [[ -n ${BG_PID:-} ]]; then # an interrupted download/build step (timeout forwards the signal)
    kill -TERM "$BG_PID" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$BG_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$BG_PID" 2>/dev/null || true
  fi
  if ((rc != 0)) && ((${#ROLLBACK[@]} > 0)); then
    for ((i = ${#ROLLBACK[@]} - 1; i >= 0; i--)); do
      c=${ROLLBACK[i]}
      if running_pid "$c" >/dev/null 2>&1; then
        stop_component "$c" quiet >/dev/null 2>&1 || true
        printf 'infra: stopped %s again because up failed\n' "$c" >&2
      fi
    done
  fi
  for d in "${TEMP_DIRS[@]}"; do rm -rf -- "$d"; done
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Serialize invocations on one state dir (fd 9; closed for every long-lived child).
lock_state() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.infra.lock"
  flock -w 900 9 || die "another infra.sh holds $STATE_DIR/.infra.lock for more than 900 s"
}

# ----------------------------------------------------------------------------- cache: builds

# Build steps write into a temp dir under the cache and move the result into place with one
# rename, so an interrupted build never leaves a half-filled cache entry.
new_build_dir() { # name -> BUILD_TMP
  mkdir -p "$CACHE_DIR"
  # leftovers of builds that were killed outright (SIGKILL) more than 12 hours ago
  find "$CACHE_DIR" -maxdepth 1 -name '.build-*' -mmin +720 -exec rm -rf {} + 2>/dev/null || true
  BUILD_TMP=$(mktemp -d "$CACHE_DIR/.build-$1.XXXXXX")
  TEMP_DIRS+=("$BUILD_TMP")
}

# Run one download/build step: bounded by BUILD_SECONDS, in directory $2, output appended to
# log $1. It runs in the background and we `wait` for it, so INT/TERM reach our trap at once
# and on_exit stops it (bash would otherwise run the trap only after the step ends).
BG_PID=""
run_bounded() { # log dir command...
  local log=$1 dir=$2 rc=0
  shift 2
  (cd "$dir" && exec timeout "$BUILD_SECONDS" "$@") </dev/null >>"$log" 2>&1 &
  BG_PID=$!
  wait "$BG_PID" || rc=$?
  BG_PID=""
  return "$rc"
}

publish() { # tmp-dir final-dir
  chmod 755 "$1"
  if ! mv -T "$1" "$2" 2>/dev/null; then
    [[ -d $2 ]] || die "could not move $1 to $2"
    rm -rf -- "$1" # someone else published the same entry meanwhile
  fi
}

build_log() { # component
  mkdir -p "$LOG_DIR"
  echo "$LOG_DIR/$1-build.log"
}

kafka_paths() {
  KAFKA_HOME=$CACHE_DIR/kafka-$KAFKA_VERSION-$(short_sha256 <"$KAFKA_POM")
  KAFKA_LIB=$KAFKA_HOME/lib
}

prepare_kafka() {
  kafka_paths
  [[ -f $KAFKA_LIB/kafka_2.13-$KAFKA_VERSION.jar ]] && return 0
  need_cmd mvn "downloading Kafka from Maven Central"
  local t0 log
  t0=$(now_ms)
  log=$(build_log kafka)
  new_build_dir kafka
  say "kafka: downloading Kafka $KAFKA_VERSION jars from Maven Central (log: $log)"
  : >"$log"
  if ! run_bounded "$log" "$BUILD_TMP" mvn -B -q -f "$KAFKA_POM" dependency:copy-dependencies \
    -DoutputDirectory="$BUILD_TMP/lib" -DincludeScope=runtime; then
    die "kafka: download of Kafka $KAFKA_VERSION from Maven Central failed (mvn dependency:copy-dependencies); see $log"
  fi
  [[ -f $BUILD_TMP/lib/kafka_2.13-$KAFKA_VERSION.jar ]] ||
    die "kafka: mvn finished but kafka_2.13-$KAFKA_VERSION.jar is missing; see $log"
  publish "$BUILD_TMP" "$KAFKA_HOME"
  say "kafka: cached $(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars in $KAFKA_LIB ($(since "$t0") s)"
}

ferretdb_paths() {
  FERRETDB_HOME=$CACHE_DIR/ferretdb-$FERRETDB_VERSION-$(cat "${FERRETDB_PATCHES[@]}" | short_sha256)
  FERRETDB_BIN=$FERRETDB_HOME/ferretdb
}

prepare_ferretdb() {
  ferretdb_paths
  [[ -x $FERRETDB_BIN ]] && return 0
  need_cmd go "building FerretDB"
  need_cmd python3 "reading go mod download output"
  local t0 log mod_dir
  t0=$(now_ms)
  log=$(build_log ferretdb)
  new_build_dir ferretdb
  say "ferretdb: building FerretDB $FERRETDB_VERSION with ${#FERRETDB_PATCHES[@]} patches from deploy/local/ferretdb (~1.5 min cold; log: $log)"
  : >"$log"
  # shellcheck disable=SC2016 # $1 and $2 are for the inner sh
  if ! run_bounded "$log" "$BUILD_TMP" sh -c 'GOTOOLCHAIN=local go mod download -json "$1" >"$2"' \
    _ "github.com/FerretDB/FerretDB@v$FERRETDB_VERSION" "$BUILD_TMP/download.json" ||
    ! mod_dir=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["Dir"])' \
      "$BUILD_TMP/download.json" 2>>"$log"); then
    die "ferretdb: download of github.com/FerretDB/FerretDB@v$FERRETDB_VERSION from the Go module proxy failed; see $log"
  fi
  cp -R "$mod_dir" "$BUILD_TMP/src"
  chmod -R u+w "$BUILD_TMP/src"
  # A plain `go install` panics at start without a version in build/version/version.txt.
  printf 'v%s' "$FERRETDB_VERSION" >"$BUILD_TMP/src/build/version/version.txt"
  local patch_file
  for patch_file in "${FERRETDB_PATCHES[@]}"; do
    {
      echo "== patch -p1 < $patch_file"
      if command -v patch >/dev/null 2>&1; then
        patch -d "$BUILD_TMP/src" -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch -i "$patch_file"
      else
        git -C "$BUILD_TMP/src" apply --verbose "$patch_file"
      fi
    } >>"$log" 2>&1 ||
      die "ferretdb: $patch_file does not apply to FerretDB v$FERRETDB_VERSION; see $log"
  done
  echo "== go build" >>"$log"
  if ! run_bounded "$log" "$BUILD_TMP/src" env CGO_ENABLED=0 GOTOOLCHAIN=local \
    go build -buildvcs=false -o "$BUILD_TMP/out/ferretdb" ./cmd/ferretdb; then
    die "ferretdb: go build of FerretDB $FERRETDB_VERSION failed; see $log"
  fi
  publish "$BUILD_TMP/out" "$FERRETDB_HOME"
  say "ferretdb: built $FERRETDB_BIN ($(since "$t0") s)"
}

mailpit_paths() {
  MAILPIT_HOME=$CACHE_DIR/mailpit-$MAILPIT_VERSION
  MAILPIT_BIN=$MAILPIT_HOME/mailpit
}

prepare_mailpit() {
  mailpit_paths
  [[ -x $MAILPIT_BIN ]] && return 0
  need_cmd go "building Mailpit"
  local t0 log
  t0=$(now_ms)
  log=$(build_log mailpit)
  new_build_dir mailpit
  say "mailpit: building Mailpit v$MAILPIT_VERSION (~1 min cold; log: $log)"
  : >"$log"
  if ! run_bounded "$log" "$BUILD_TMP" env GOBIN="$BUILD_TMP/out" GOTOOLCHAIN=local CGO_ENABLED=0 \
    go install "github.com/axllent/mailpit@v$MAILPIT_VERSION"; then
    die "mailpit: go install github.com/axllent/mailpit@v$MAILPIT_VERSION failed; see $log"
  fi
  publish "$BUILD_TMP/out" "$MAILPIT_HOME"
  say "mailpit: built $MAILPIT_BIN ($(since "$t0") s)"
}

# PostgreSQL is not built: it comes from Debian's packages.
find_pg_bin() {
  local d
  PG_BIN=${JM_PG_BIN:-}
  if [[ -z $PG_BIN ]]; then
    if [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then
      PG_BIN=/usr/lib/postgresql/15/bin
    else
      for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/postgres ]] && PG_BIN=$d # glob order: the last is the newest
      done
    fi
  fi
  [[ -n $PG_BIN && -x $PG_BIN/postgres && -x $PG_BIN/pg_ctl && -x $PG_BIN/initdb ]]
}

prepare_postgres() {
  find_pg_bin && return 0
  if [[ -n ${JM_PG_BIN:-} ]]; then
    die "postgres: JM_PG_BIN=$JM_PG_BIN has no postgres, pg_ctl and initdb"
  fi
  if ((EUID != 0)); then
    die "postgres: PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin; install them (apt-get install postgresql) or set JM_PG_BIN"
  fi
  local t0 log
  t0=$(now_ms)
  log=$(build_log postgres)
  say "postgres: installing PostgreSQL with apt-get (log: $log)"
  {
    timeout "$BUILD_SECONDS" apt-get update &&
      DEBIAN_FRONTEND=noninteractive timeout "$BUILD_SECONDS" apt-get install -y postgresql
  } </dev/null >"$log" 2>&1 || die "postgres: apt-get install postgresql failed; see $log"
  find_pg_bin || die "postgres: apt-get installed postgresql but no server binaries in /usr/lib/postgresql/*/bin"
  # Debian's package may start its own 'main' cluster on 5432; that one is not ours.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    local ver cluster port status
    while read -r ver cluster port status _; do
      if [[ $port == "$PG_PORT" && $status == online* ]]; then
        pg_ctlcluster "$ver" "$cluster" stop >>"$log" 2>&1 || true
        say "postgres: stopped Debian's default cluster $ver/$cluster that apt started on port $port"
      fi
    done < <(pg_lsclusters --no-header 2>/dev/null || true)
  fi
  say "postgres: installed PostgreSQL in $PG_BIN ($(since "$t0") s)"
}

prepare_component() {
  case $1 in
    kafka) prepare_kafka ;;
    postgres) prepare_postgres ;;
    ferretdb) prepare_ferretdb ;;
    mailpit) prepare_mailpit ;;
  esac
}

# ----------------------------------------------------------------------------- processes

pidfile_of() { echo "$RUN_DIR/$1.pid"; }

# The string that the command line of our process must contain (guards against pid reuse).
marker_of() {
  case $1 in
    kafka) echo "$STATE_DIR/kafka/server.properties" ;;
    ferretdb) echo "--state-dir=$STATE_DIR/ferretdb" ;;
    mailpit) echo "$STATE_DIR/mailpit/" ;;
  esac
}

cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# Prints the pid of our running component and succeeds, or fails (and drops a stale pid file).
running_pid() { # component
  local comp=$1 pidfile pid cmd
  if [[ $comp == postgres ]]; then
    pg_layout
    [[ -f $PG_DATA/postmaster.pid ]] || return 1
    pid=$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    cmd=$(cmdline_of "$pid" || true)
    [[ $cmd == *postgres* && $cmd == *"$PG_DATA"* ]] || return 1
    echo "$pid"
    return 0
  fi
  pidfile=$(pidfile_of "$comp")
  [[ -f $pidfile ]] || return 1
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]]; then
    cmd=$(cmdline_of "$pid" || true)
    if [[ -n $cmd && $cmd == *"$(marker_of "$comp")"* ]]; then
      echo "$pid"
      return 0
    fi
  fi
  rm -f "$pidfile"
  return 1
}

# Start a daemon in its own session, stdin from /dev/null, output to its log; its own pid
# goes to the pid file (written by the process itself, right before exec).
spawn() { # component command...
  local comp=$1 pidfile log i
  shift
  pidfile=$(pidfile_of "$comp")
  log=$(log_of "$comp")
  mkdir -p "$RUN_DIR"
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # $$ and $0 are for the inner shell
  setsid bash -c 'echo $$ >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$log" 2>&1 9>&- &
  for ((i = 0; i < 50; i++)); do
    [[ -s $pidfile ]] && return 0
    sleep 0.1
  done
  die "$comp: process did not start (no pid file after 5 s); see $log"
}

pg_as() { # run a command as the PostgreSQL server user (postgres when we are root)
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# Where PostgreSQL keeps its data. As root, the server runs as `postgres`, which must be able
# to reach the data dir; if the state dir is not reachable by postgres (e.g. a clone under
# /root), the data lives under /tmp/junipermarket-pg-<hash of the state dir> instead.
pg_layout() {
  [[ -n ${PG_ROOT:-} ]] && return 0
  PG_ROOT=$STATE_DIR/postgres
  PG_FALLBACK=""
  if ((EUID == 0)); then
    if ! id postgres >/dev/null 2>&1; then
      PG_NO_USER=1
    elif ! (cd / && runuser -u postgres -- test -x "$STATE_DIR") 2>/dev/null; then
      PG_FALLBACK="$STATE_DIR is not reachable by the postgres user"
      PG_ROOT=/tmp/junipermarket-pg-$(printf '%s' "$STATE_DIR" | short_sha256)
    fi
  fi
  PG_DATA=$PG_ROOT/data
  PG_SOCK=$PG_ROOT/run
  # unix socket paths are limited to 107 bytes
  if ((${#PG_SOCK} + 20 > 107)); then
    PG_SOCK=/tmp/junipermarket-pgsock-$(printf '%s' "$STATE_DIR" | short_sha256)
  fi
}

# ----------------------------------------------------------------------------- start

launch_kafka() {
  local dir=$STATE_DIR/kafka log cluster_id
  need_cmd java "running Kafka"
  prepare_kafka
  require_free_ports kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  log=$(log_of kafka)
  mkdir -p "$dir/data"
  local admin_password principal
  admin_password=$(kafka_password "$KAFKA_SUPER_USER")
  # The client listener takes SASL SCRAM-SHA-512 only. The controller listener takes PLAIN:
  # SCRAM credentials live in the metadata log the controller serves, so it cannot use them.
  cat >"$dir/server.properties" <<EOF
# generated by deploy/local/infra.sh -- edits are overwritten at every start
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$KAFKA_CONTROLLER_PORT
listeners=SASL_PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_SUPER_USER" password="$admin_password";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$KAFKA_SUPER_USER" password="$admin_password" user_$KAFKA_SUPER_USER="$admin_password";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:$KAFKA_SUPER_USER
allow.everyone.if.no.acl.found=false
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  chmod 600 "$dir/server.properties"
  open_log kafka
  local -a java_opts=(-Dlog4j2.configurationFile="$KAFKA_LOG4J" -Djava.awt.headless=true)
  # SCRAM users exist only if the storage was formatted with them: a data dir formatted
  # otherwise (a PLAINTEXT broker, other principals) is local data and is formatted again.
  local users="SCRAM-SHA-512 users: ${KAFKA_PRINCIPALS[*]}"
  if [[ -f $dir/data/meta.properties && $(cat "$dir/users" 2>/dev/null) != "$users" ]]; then
    say "kafka: $dir/data was formatted without this broker's SASL users; formatting it again (local topics and offsets are wiped)"
    echo "== wiping $dir/data: formatted without '$users'" >>"$log"
    rm -rf -- "$dir/data" "$dir/users"
    mkdir -p "$dir/data"
  fi
  if [[ ! -f $dir/data/meta.properties ]]; then
    # format the KRaft storage once, with one SCRAM credential per principal
    cluster_id=$(timeout 120 java "${java_opts[@]}" -cp "$KAFKA_LIB/*" kafka.tools.StorageTool random-uuid 2>>"$log" |
      grep -E '^[A-Za-z0-9_-]{22}$' | tail -n1) || die "kafka: StorageTool random-uuid failed; see $log"
    [[ -n $cluster_id ]] || die "kafka: StorageTool random-uuid printed no cluster id; see $log"
    local -a scram=()
    for principal in "${KAFKA_PRINCIPALS[@]}"; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=$principal,password=$(kafka_password "$principal")]")
    done
    echo "== formatting $dir/data with cluster id $cluster_id and $users" >>"$log"
    timeout 120 java "${java_opts[@]}" -cp "$KAFKA_LIB/*" kafka.tools.StorageTool format --standalone \
      -t "$cluster_id" -c "$dir/server.properties" "${scram[@]}" >>"$log" 2>&1 ||
      die "kafka: formatting the storage in $dir/data failed; see $log"
    echo "$users" >"$dir/users"
  fi
  spawn kafka java -Xmx512m -XX:+ExitOnOutOfMemoryError "${java_opts[@]}" \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$dir/server.properties"
}

launch_postgres() {
  local log opts
  prepare_postgres
  pg_layout
  [[ -z ${PG_NO_USER:-} ]] || die "postgres: running as root but there is no 'postgres' user to run the server"
  require_free_ports postgres "$PG_PORT"
  log=$(log_of postgres)
  open_log postgres
  if [[ -n $PG_FALLBACK ]]; then
    echo "== data dir is $PG_DATA because $PG_FALLBACK" >>"$log"
  fi
  mkdir -p "$PG_ROOT"
  chmod 755 "$PG_ROOT"
  mkdir -p "$PG_SOCK"
  if ((EUID == 0)); then chown postgres: "$PG_SOCK"; fi
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    rm -rf -- "$PG_DATA.init"
    mkdir -p "$PG_DATA.init"
    chmod 700 "$PG_DATA.init"
    if ((EUID == 0)); then chown postgres: "$PG_DATA.init"; fi
    echo "== initdb $PG_DATA" >>"$log"
    pg_as timeout 300 "$PG_BIN/initdb" -D "$PG_DATA.init" -A trust -U postgres -E UTF8 --no-locale \
      </dev/null >>"$log" 2>&1 || die "postgres: initdb failed; see $log"
    mv -T "$PG_DATA.init" "$PG_DATA"
  fi
  # lz4: FerretDB's order documents are TOASTed (compressed out of line) once they pass ~2 KB,
  # and pglz_compress was PostgreSQL's largest own frame under the chain benchmark.
  opts="-p $PG_PORT -k '$PG_SOCK' -c listen_addresses=$HOST -c max_connections=400"
  opts+=" -c default_toast_compression=lz4"
  echo "== pg_ctl start -D $PG_DATA -o '$opts'" >>"$log"
  pg_as "$PG_BIN/pg_ctl" start -w -t "$WAIT_SECONDS" -D "$PG_DATA" -o "$opts" \
    </dev/null >>"$log" 2>&1 9>&- ||
    die "postgres: pg_ctl start failed or timed out after $WAIT_SECONDS s; see $log"
  # FerretDB's database
  local exists
  exists=$("$PG_BIN/psql" -X -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc \
    "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'" 2>>"$log") ||
    die "postgres: started but psql cannot connect; see $log"
  if [[ $exists != 1 ]]; then
    "$PG_BIN/createdb" -h "$HOST" -p "$PG_PORT" -U postgres ferretdb >>"$log" 2>&1 ||
      die "postgres: createdb ferretdb failed; see $log"
  fi
}

launch_ferretdb() {
  local dir=$STATE_DIR/ferretdb
  prepare_ferretdb
  require_free_ports ferretdb "$FERRETDB_PORT"
  running_pid postgres >/dev/null || die "ferretdb: our postgres is not running (start it: infra.sh up postgres ferretdb)"
  mkdir -p "$dir"
  open_log ferretdb
  # pool_max_conns: FerretDB holds about one PostgreSQL connection per statement in flight
  # and deadlocks when its pool runs out (default 50); PostgreSQL has max_connections=400.
  # GOGC=400: FerretDB allocates a fresh tree per document it decodes, and Go's collector
  # took ~15 % of its CPU at the default 100; its heap stays small (about 60 MB -> 150 MB).
  GOGC=${JM_FERRETDB_GOGC:-400} spawn ferretdb "$FERRETDB_BIN" \
    --handler=postgresql \
    --postgresql-url="postgres://postgres@$HOST:$PG_PORT/ferretdb?pool_max_conns=300" \
    --listen-addr="$HOST:$FERRETDB_PORT" \
    --state-dir="$dir" \
    --telemetry=disable \
    --debug-addr=${JM_FERRETDB_DEBUG_ADDR:--}
}

launch_mailpit() {
  local dir=$STATE_DIR/mailpit
  prepare_mailpit
  require_free_ports mailpit "$SMTP_PORT" "$MAILPIT_PORT"
  mkdir -p "$dir"
  open_log mailpit
  # Accept any SMTP AUTH (and none) over plain text, no reverse DNS, messages kept in the state dir.
  spawn mailpit "$MAILPIT_BIN" \
    --smtp "$HOST:$SMTP_PORT" \
    --listen "$HOST:$MAILPIT_PORT" \
    --database "$dir/mailpit.db" \
    --smtp-auth-accept-any \
    --smtp-auth-allow-insecure \
    --smtp-disable-rdns \
    --disable-version-check
}

# One readiness check of a component being waited for: succeeds when it answers; dies when
# its process is gone or it has not answered within WAIT_SECONDS of t0 (ms).
check_ready() { # component t0
  local comp=$1 t0=$2
  answers "$comp" && return 0
  running_pid "$comp" >/dev/null || die "$comp: exited while starting; see $(log_of "$comp")"
  if (($(now_ms) - t0 >= WAIT_SECONDS * 1000)); then
    die "$comp: did not answer on $(where_of "$comp") within $WAIT_SECONDS s; see $(log_of "$comp")"
  fi
  return 1
}

# Topics and ACLs of the contract's "Kafka access" table, applied as the super user; idempotent,
# so it runs at every `up`. The table is data in juniper_ops.kafka_access.
provision_kafka() {
  local t0 log out
  t0=$(now_ms)
  log=$(log_of kafka)
  need_cmd uv "granting the Kafka ACLs (make install)"
  if ! out=$(cd "$REPO_ROOT" && KAFKA_BOOTSTRAP_SERVERS="$HOST:$KAFKA_PORT" \
    KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT KAFKA_SASL_MECHANISM=SCRAM-SHA-512 \
    KAFKA_SASL_USERNAME="$KAFKA_SUPER_USER" KAFKA_SASL_PASSWORD="$(kafka_password "$KAFKA_SUPER_USER")" \
    KAFKA_TOPIC_PREFIX="" timeout "$WAIT_SECONDS" uv run --frozen --quiet \
    python -m juniper_ops.kafka_access provision --wait "$WAIT_SECONDS" </dev/null 2>>"$log"); then
    die "kafka: creating the topics and granting the ACLs failed; see $log"
  fi
  say "$out ($(since "$t0") s)"
}

record_started() {
  if [[ -n ${INFRA_STARTED_FILE:-} ]]; then echo "$1" >>"$INFRA_STARTED_FILE"; fi
}

cmd_up() {
  select_components 1 "$@"
  local c t
  local -A t0=() fresh=()
  local -a pending still
  if [[ -n ${INFRA_STARTED_FILE:-} ]]; then : >"$INFRA_STARTED_FILE"; fi
  for c in "${SELECTED[@]}"; do prepare_component "$c"; done
  need_cmd python3 "the readiness probes"
  lock_state
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  find_pg_bin || true
  pg_layout
  # Launch everything first (postgres' launch waits for it, ferretdb needs it), then wait for
  # all of them together, so Kafka's JVM warms up while the others start. One line each, in
  # the order they answer, with the time from launch to first answer.
  for c in "${SELECTED[@]}"; do
    if running_pid "$c" >/dev/null; then continue; fi
    t0[$c]=$(now_ms)
    ROLLBACK+=("$c")
    "launch_$c"
    fresh[$c]=1
    record_started "$c"
  done
  t=$(now_ms)
  for c in "${SELECTED[@]}"; do
    if [[ -z ${t0[$c]:-} ]]; then t0[$c]=$t; fi
  done
  pending=("${SELECTED[@]}")
  while ((${#pending[@]} > 0)); do
    still=()
    for c in "${pending[@]}"; do
      if check_ready "$c" "${t0[$c]}"; then
        if [[ -n ${fresh[$c]:-} ]]; then
          say "$c: started on $(where_of "$c") ($(since "${t0[$c]}") s)"
        else
          say "$c: already running"
        fi
      else
        still+=("$c")
      fi
    done
    pending=("${still[@]}")
    if ((${#pending[@]} > 0)); then sleep 0.2; fi
  done
  for c in "${SELECTED[@]}"; do
    if [[ $c == kafka ]]; then provision_kafka; fi
  done
  ROLLBACK=()
}

# ----------------------------------------------------------------------------- stop

stop_component() { # component [quiet]
  local comp=$1 pid t0 i
  if ! pid=$(running_pid "$comp"); then
    [[ ${2:-} == quiet ]] || say "$comp: not running"
    return 0
  fi
  t0=$(now_ms)
  if [[ $comp == postgres ]]; then
    if ! pg_as "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t "$STOP_SECONDS" >>"$(log_of postgres)" 2>&1; then
      pg_as "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t 10 >>"$(log_of postgres)" 2>&1 || true
    fi
  else
    kill -TERM "$pid" 2>/dev/null || true
  fi
  for ((i = 0; i < STOP_SECONDS * 10; i++)); do
    [[ -d /proc/$pid ]] || break
    sleep 0.1
  done
  if [[ -d /proc/$pid ]]; then
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      [[ -d /proc/$pid ]] || break
      sleep 0.1
    done
    [[ ! -d /proc/$pid ]] || die "$comp: process $pid survived SIGKILL"
    [[ ${2:-} == quiet ]] || say "$comp: killed after ${STOP_SECONDS} s (pid $pid)"
  else
    [[ ${2:-} == quiet ]] || say "$comp: stopped ($(since "$t0") s)"
  fi
  if [[ $comp != postgres ]]; then rm -f "$(pidfile_of "$comp")"; fi
}

cmd_down() {
  select_components 0 "$@"
  local i
  if [[ ! -d $STATE_DIR ]]; then
    for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do say "${SELECTED[i]}: not running"; done
    return 0
  fi
  lock_state
  find_pg_bin || PG_BIN=/usr/lib/postgresql/15/bin
  pg_layout
  for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do stop_component "${SELECTED[i]}"; done
}

# ----------------------------------------------------------------------------- status, reset

cmd_status() {
  (($# == 0)) || die "status takes no arguments"
  local c pid port
  local -a taken
  find_pg_bin || PG_BIN=/usr/lib/postgresql/15/bin
  pg_layout
  for c in "${ALL_COMPONENTS[@]}"; do
    if pid=$(running_pid "$c"); then
      if answers "$c"; then
        say "$c: running (pid $pid) on $(where_of "$c")"
      else
        say "$c: running (pid $pid) but not answering on $(where_of "$c")"
      fi
    else
      taken=()
      for port in $(ports_of "$c"); do
        if port_in_use "$port"; then taken+=("$port"); fi
      done
      if ((${#taken[@]} > 0)); then
        say "$c: stopped (port ${taken[*]} taken by another process)"
      else
        say "$c: stopped"
      fi
    fi
  done
}

cmd_prepare() {
  select_components 0 "$@"
  local c
  for c in "${SELECTED[@]}"; do
    prepare_component "$c"
    case $c in
      kafka) say "kafka: ready in $KAFKA_LIB" ;;
      postgres) say "postgres: ready in $PG_BIN" ;;
      ferretdb) say "ferretdb: ready in $FERRETDB_BIN" ;;
      mailpit) say "mailpit: ready in $MAILPIT_BIN" ;;
    esac
  done
}

cmd_reset_data() {
  select_components 0 "$@"
  local i c
  [[ -d $STATE_DIR ]] || return 0
  lock_state
  find_pg_bin || PG_BIN=/usr/lib/postgresql/15/bin
  pg_layout
  for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do stop_component "${SELECTED[i]}" quiet; done
  for c in "${SELECTED[@]}"; do
    case $c in
      kafka) rm -rf -- "$STATE_DIR/kafka" ;;
      postgres)
        pg_layout
        rm -rf -- "$PG_DATA" "$PG_DATA.init"
        ;;
      ferretdb) rm -rf -- "$STATE_DIR/ferretdb" ;;
      mailpit) rm -rf -- "$STATE_DIR/mailpit" ;;
    esac
    if [[ $c == ferretdb ]]; then
      say "ferretdb: stopped, state wiped (its documents live in postgres: reset-data postgres)"
    else
      say "$c: stopped, data wiped"
    fi
  done
}

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  (($# > 0)) && shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    prepare) cmd_prepare "$@" ;;
    reset-data) cmd_reset_data "$@" ;;
    -h | --help | help) usage ;;
    '')
      usage >&2
      exit 2
      ;;
    *) die "unknown command '$cmd' (use: up, down, status, prepare, reset-data)" ;;
  esac
}

main "$@"
