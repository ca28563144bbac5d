#!/usr/bin/env bash
# make test: start the infrastructure the tests need, run them, stop exactly what was started.
set -euo pipefail
cd "$(dirname "$0")/.."
started_file=$(mktemp)
stop_started() {
  local started
  started=$(tr '\n' ' ' < "$started_file")
  if [ -n "${started// }" ]; then bash deploy/local/infra.sh down $started; fi
  rm -f "$started_file"
}
trap stop_started EXIT
INFRA_STARTED_FILE="$started_file" bash deploy/local/infra.sh up kafka postgres ferretdb
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
export MONGODB_URL="${MONGODB_URL:-mongodb://127.0.0.1:27017}"
export AUTH_JWT_SECRET="${AUTH_JWT_SECRET:-dev-only-secret}"
export BUYER_LINK_SECRET="${BUYER_LINK_SECRET:-dev-only-buyer-link-secret}"
# The Fernet key of the card vault in tests and `make up`: base64 of "dev-only-card-vault-key-32-bytes".
export CARD_VAULT_KEY="${CARD_VAULT_KEY:-ZGV2LW9ubHktY2FyZC12YXVsdC1rZXktMzItYnl0ZXM=}"
# The local broker authenticates (SASL SCRAM-SHA-512) and authorizes by ACL: each client of the
# tests picks its principal (juniper_testkit.kafka_credentials), with its local password.
export KAFKA_SECURITY_PROTOCOL="${KAFKA_SECURITY_PROTOCOL:-SASL_PLAINTEXT}"
export KAFKA_SASL_MECHANISM="${KAFKA_SASL_MECHANISM:-SCRAM-SHA-512}"
uv run --frozen pytest "$@"
