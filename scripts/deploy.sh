#!/usr/bin/env bash
# Deploys the whole stack (compose.yaml) with Docker or Podman, from a fresh clone or over a running deployment:
# checks the tools, creates .env from .env.example if missing, fills its empty secrets, validates compose.yaml,
# builds and starts everything, waits until every health check passes, runs the Lago bootstrap, prints the URLs.
#
#   scripts/deploy.sh [--engine docker|podman] [--timeout SECONDS]
#
# --engine   use this container engine (default: Docker if its compose works, else Podman)
# --timeout  how long to wait for the health checks once the containers are started (default 600)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

engine=""
timeout=600
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine="${2:-}"; shift 2 ;;
    --timeout) timeout="${2:-}"; shift 2 ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "deploy: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$timeout" in '' | *[!0-9]*) echo "deploy: --timeout needs a number of seconds" >&2; exit 2 ;; esac

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\ndeploy: %s\n' "$*" >&2; exit 1; }

# ---- 1. tools ------------------------------------------------------------------------------------------------
compose=()
# Docker or Podman, with its compose plugin (`docker compose`, `podman compose`) or the standalone
# docker-compose / podman-compose.
use_engine() {
  command -v "$1" >/dev/null 2>&1 || return 1
  if "$1" compose version >/dev/null 2>&1; then compose=("$1" compose)
  elif command -v "$1-compose" >/dev/null 2>&1; then compose=("$1-compose")
  else return 1
  fi
  engine="$1"
}

step "Checking the tools"
case "$engine" in
  docker) use_engine docker || fail "--engine docker: needs docker with the compose plugin (docker compose) or docker-compose" ;;
  podman) use_engine podman || fail "--engine podman: needs podman with podman compose or podman-compose" ;;
  "") use_engine docker || use_engine podman ||
        fail "needs Docker with compose (docker compose, or docker-compose) or Podman with podman compose / podman-compose" ;;
  *) fail "--engine must be docker or podman" ;;
esac
"$engine" info >/dev/null 2>&1 ||
  fail "$engine is installed but not answering (\`$engine info\` failed): start the Docker daemon or the Podman machine"
command -v openssl >/dev/null 2>&1 || fail "needs openssl (to generate the secrets in .env)"
echo "using: ${compose[*]} ($("${compose[@]}" version 2>/dev/null | head -n 1))"

# ---- 2. configuration ---------------------------------------------------------------------------------------
step "Configuration (.env)"
if [ ! -f .env ]; then
  cp .env.example .env
  echo "created .env from .env.example"
fi
scripts/generate-keys.sh .env

step "Validating compose.yaml with .env"
"${compose[@]}" config >/dev/null || fail "compose.yaml does not resolve with .env (the message above names the variable)"
echo "valid"

# ---- 3. start -----------------------------------------------------------------------------------------------
step "Building lago-api-integration and starting the stack (the first run pulls the images)"
"${compose[@]}" up -d --build ||
  fail "\`${compose[*]} up\` failed: see its message above; \`${compose[*]} logs <service>\` shows why a one-shot step failed"

# ---- 4. wait for the health checks ------------------------------------------------------------------------
step "Waiting for every health check (up to ${timeout}s)"
first="$("${compose[@]}" ps -q | head -n 1)"
[ -n "$first" ] || fail "no container of this project is running after \`up\`"
project="$("$engine" inspect -f '{{ index .Config.Labels "com.docker.compose.project" }}' "$first")"

# One line per container of the project: service|status|health|exit code|restart policy.
states() {
  local ids
  ids="$("$engine" ps -aq --filter "label=com.docker.compose.project=$project")"
  [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086 # one argument per container id
  "$engine" inspect -f '{{ index .Config.Labels "com.docker.compose.service" }}|{{ .State.Status }}|{{ if .State.Health }}{{ .State.Health.Status }}{{ end }}|{{ .State.ExitCode }}|{{ .HostConfig.RestartPolicy.Name }}' $ids
}

report() {
  local service="$1" why="$2"
  printf '\n---- %s: %s; its last log lines:\n' "$service" "$why" >&2
  "${compose[@]}" logs --tail 30 "$service" >&2 || true
}

deadline=$((SECONDS + timeout))
while :; do
  pending=()
  failed=()
  while IFS='|' read -r service status health code policy; do
    [ -n "$service" ] || continue
    case "$status" in
      running)
        case "$health" in
          healthy | "") ;;
          *) pending+=("$service ($health)") ;;
        esac ;;
      exited)
        if [ "$code" != 0 ]; then failed+=("$service|exited with code $code")
        elif [ "$policy" = unless-stopped ] || [ "$policy" = always ]; then pending+=("$service (restarting)")
        fi ;;
      *) pending+=("$service ($status)") ;;
    esac
  done < <(states | sort -u)

  if [ "${#failed[@]}" -gt 0 ]; then
    for entry in "${failed[@]}"; do report "${entry%%|*}" "${entry#*|}"; done
    fail "a step of the stack failed (above): fix it, then run scripts/deploy.sh again"
  fi
  [ "${#pending[@]}" -eq 0 ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    for entry in "${pending[@]}"; do report "${entry%% *}" "not healthy after ${timeout}s: ${entry#* }"; done
    fail "not healthy after ${timeout}s: ${pending[*]}"
  fi
  echo "waiting for: ${pending[*]}"
  sleep 5
done
echo "every service is healthy"

# ---- 5. bootstrap -------------------------------------------------------------------------------------------
step "Lago bootstrap: billable metric ai_usage and plan ai_usage_plan (idempotent)"
"${compose[@]}" exec -T lago-api-integration node dist/scripts/bootstrap.js || {
  report lago-api-integration "the bootstrap failed"
  fail "the Lago bootstrap failed (above); it is safe to re-run scripts/deploy.sh"
}

# ---- 6. where things are -------------------------------------------------------------------------------------
step "Deployed"
cat <<EOF
  lago-api-integration   http://localhost:3002        (health: /health, ingestion: POST /webhooks/litellm)
  Lago front end         http://localhost:8080        (login: LAGO_ORG_USER_EMAIL / LAGO_ORG_USER_PASSWORD in .env)
  Lago API               http://localhost:3000        (Bearer LAGO_ORG_API_KEY from .env)
  PostgreSQL             127.0.0.1:5433               (databases lago and lago_integration)
  Redis                  127.0.0.1:6380

  Logs: ${compose[*]} logs -f lago-api-integration    Scale: ${compose[*]} up -d --scale lago-api-integration=3
EOF
