#!/usr/bin/env bash
# make up / make down: the whole system on this machine, in the background.
#   stack.sh up     infrastructure + every service that exists (+ the sandbox card processor)
#   stack.sh down   stop the services, then the infrastructure
#   stack.sh status
set -euo pipefail
cd "$(dirname "$0")/.."
STATE_DIR=${JM_STATE_DIR:-$PWD/.local}
RUN_DIR=$STATE_DIR/services
LOG_DIR=$STATE_DIR/logs
mkdir -p "$RUN_DIR" "$LOG_DIR"

export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
export MONGODB_URL=${MONGODB_URL:-mongodb://127.0.0.1:27017}
export AUTH_JWT_SECRET=${AUTH_JWT_SECRET:-dev-only-secret}
export BUYER_LINK_SECRET=${BUYER_LINK_SECRET:-dev-only-buyer-link-secret}
# The card vault's Fernet key for local use only: base64 of "dev-only-card-vault-key-32-bytes".
export CARD_VAULT_KEY=${CARD_VAULT_KEY:-ZGV2LW9ubHktY2FyZC12YXVsdC1rZXktMzItYnl0ZXM=}
export SMTP_HOST=${SMTP_HOST:-127.0.0.1} SMTP_PORT=${SMTP_PORT:-1025}
export CARD_PROCESSOR_URL=${CARD_PROCESSOR_URL:-http://127.0.0.1:8010}
# Kafka authenticates every client (SASL SCRAM-SHA-512): each service connects as its own
# principal, the demo seed as checkout; local passwords as deploy/local/infra.sh sets them.
export KAFKA_SECURITY_PROTOCOL=${KAFKA_SECURITY_PROTOCOL:-SASL_PLAINTEXT}
export KAFKA_SASL_MECHANISM=${KAFKA_SASL_MECHANISM:-SCRAM-SHA-512}

kafka_password() { # principal
  local var="JM_KAFKA_PASSWORD_${1^^}"
  printf '%s' "${!var:-$1-dev-secret}"
}
# Expired demo orders show within seconds (the default sweep is every 60 s).
export EXPIRY_SWEEP_SECONDS=${EXPIRY_SWEEP_SECONDS:-5}

# name, python module, port (services appear here as they are built)
PROCESSES=(
  "sandbox card_sandbox 8010"
  "orders orders 8001"
  "invoicing invoicing 8002"
  "payments payments 8003"
  "notifications notifications 8004"
  "console console 8000"
)

exists() { uv run --frozen python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }

alive() { [[ -f $RUN_DIR/$1.pid ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

wait_ready() {
  local name=$1 url=$2 deadline=$((SECONDS + 60))
  until curl -fs -o /dev/null "$url"; do
    if ! alive "$name"; then echo "stack: $name exited during start-up; see $LOG_DIR/$name.log" >&2; return 1; fi
    if ((SECONDS > deadline)); then echo "stack: $name not ready after 60 s; see $LOG_DIR/$name.log" >&2; return 1; fi
    sleep 0.3
  done
}

up() {
  bash deploy/local/infra.sh up
  local entry name module port
  for entry in "${PROCESSES[@]}"; do
    read -r name module port <<<"$entry"
    exists "$module" || continue
    if alive "$name"; then echo "$name: already running"; continue; fi
    if [[ $name == sandbox ]]; then
      SANDBOX_PORT=$port nohup uv run --frozen python -m "$module" >"$LOG_DIR/$name.log" 2>&1 &
    elif [[ $name == console ]]; then
      # The development sign-in (demo sellers, plain-HTTP cookie): `make up` only.
      CONSOLE_DEV_SIGN_IN=true CONSOLE_SECURE_COOKIES=false HTTP_PORT=$port \
        nohup uv run --frozen python -m "$module" >"$LOG_DIR/$name.log" 2>&1 &
    else
      HTTP_PORT=$port KAFKA_SASL_USERNAME=$name KAFKA_SASL_PASSWORD=$(kafka_password "$name") \
        nohup uv run --frozen python -m "$module" >"$LOG_DIR/$name.log" 2>&1 &
    fi
    echo $! >"$RUN_DIR/$name.pid"
    local probe="http://127.0.0.1:$port/readyz"
    [[ $name == sandbox ]] && probe="http://127.0.0.1:$port/v1/charges?reference=none"
    wait_ready "$name" "$probe"
    echo "$name: started on http://127.0.0.1:$port"
  done
  KAFKA_SASL_USERNAME=checkout KAFKA_SASL_PASSWORD=$(kafka_password checkout) \
    uv run --frozen python scripts/seed_demo.py || echo "stack: seeding the demo data failed" >&2
  echo
  echo "Seller console:         http://127.0.0.1:8000 (sign in as juniper-pottery or harbour-goods)"
  echo "Seller APIs (OpenAPI):  orders http://127.0.0.1:8001/docs   invoicing http://127.0.0.1:8002/docs"
  echo "                        payments http://127.0.0.1:8003/docs notifications http://127.0.0.1:8004/docs"
  echo "AsyncAPI documents:     docs/asyncapi/*.json (make asyncapi)"
  echo "Mail inbox (Mailpit):   http://127.0.0.1:8025"
  echo "Logs:                   $LOG_DIR"
}

down() {
  local entry name pid
  for entry in "${PROCESSES[@]}"; do
    read -r name _ _ <<<"$entry"
    alive "$name" || { rm -f "$RUN_DIR/$name.pid"; continue; }
    pid=$(cat "$RUN_DIR/$name.pid")
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$RUN_DIR/$name.pid"
    echo "$name: stopped"
  done
  bash deploy/local/infra.sh down
}

status() {
  local entry name
  for entry in "${PROCESSES[@]}"; do
    read -r name _ port <<<"$entry"
    if alive "$name"; then echo "$name: running (pid $(cat "$RUN_DIR/$name.pid"))"; else echo "$name: stopped"; fi
  done
  bash deploy/local/infra.sh status
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
