#!/usr/bin/env bash
# Fills every empty secret of the env file with a fresh random value (openssl), and never overwrites one already set:
# running it again, or after editing .env by hand, changes nothing that has a value.
#   scripts/generate-keys.sh [ENV_FILE]      (default: .env next to compose.yaml; created from .env.example if missing)
# Prints the names it generated, never the values.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_file="${1:-$root/.env}"

command -v openssl >/dev/null 2>&1 || { echo "generate-keys: openssl is required" >&2; exit 1; }

if [ ! -f "$env_file" ]; then
  cp "$root/.env.example" "$env_file"
  echo "created $env_file from .env.example"
fi

# A UUID v4 from 16 random bytes, the shape of the API keys Lago generates itself.
uuid() {
  local h
  h="$(openssl rand -hex 16)"
  printf '%s-%s-4%s-%x%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:13:3}" $(( (16#${h:16:1} & 3) | 8 )) "${h:17:3}" "${h:20:12}"
}

generate() {
  case "$1" in
    POSTGRES_PASSWORD | INTEGRATION_DB_PASSWORD) openssl rand -hex 24 ;;
    SECRET_KEY_BASE) openssl rand -hex 64 ;;
    ENCRYPTION_PRIMARY_KEY | ENCRYPTION_DETERMINISTIC_KEY | ENCRYPTION_KEY_DERIVATION_SALT) openssl rand -hex 32 ;;
    LAGO_RSA_PRIVATE_KEY) openssl genrsa 2048 2>/dev/null | openssl base64 -A ;;
    LAGO_ORG_API_KEY) uuid ;;
    LAGO_ORG_USER_PASSWORD) openssl rand -hex 16 ;;
    LAGO_WEBHOOK_SECRET) printf 'whsec_%s\n' "$(openssl rand -base64 32)" ;;
    WEBHOOK_TOKENS) openssl rand -hex 32 ;;
    *) echo "generate-keys: no generator for $1" >&2; return 1 ;;
  esac
}

# The value of KEY in the env file as compose reads it: the last assignment, inline comment and quotes removed.
current_value() {
  awk -v key="$1" -v sq="'" '
    $0 ~ "^[[:space:]]*(export[[:space:]]+)?" key "[[:space:]]*=" {
      v = $0; sub(/^[^=]*=[[:space:]]*/, "", v)
      q = substr(v, 1, 1)
      if (q == "\"" || q == sq) { v = substr(v, 2); sub(q ".*$", "", v) }
      else { sub(/[[:space:]]+#.*$/, "", v); sub(/^#.*$/, "", v); sub(/[[:space:]]+$/, "", v) }
      found = v
    }
    END { printf "%s", found }
  ' "$env_file"
}

# Sets KEY: replaces its (empty) assignment in place, keeping the line's comment, or appends it.
set_value() {
  local tmp
  tmp="$(mktemp "$env_file.XXXXXX")"
  KEY="$1" VALUE="$2" awk '
    BEGIN { key = ENVIRON["KEY"]; value = ENVIRON["VALUE"] }
    !done && $0 ~ "^[[:space:]]*(export[[:space:]]+)?" key "[[:space:]]*=" {
      comment = ""
      if (match($0, /[[:space:]]+#.*$/)) comment = substr($0, RSTART)
      print key "=" value comment; done = 1; next
    }
    { print }
    END { if (!done) print key "=" value }
  ' "$env_file" >"$tmp"
  # Keep the file's permissions (mktemp creates 0600).
  cat "$tmp" >"$env_file"
  rm -f "$tmp"
}

secrets=(
  POSTGRES_PASSWORD INTEGRATION_DB_PASSWORD SECRET_KEY_BASE
  ENCRYPTION_PRIMARY_KEY ENCRYPTION_DETERMINISTIC_KEY ENCRYPTION_KEY_DERIVATION_SALT
  LAGO_RSA_PRIVATE_KEY LAGO_ORG_API_KEY LAGO_ORG_USER_PASSWORD LAGO_WEBHOOK_SECRET WEBHOOK_TOKENS
)

chmod 600 "$env_file"
generated=()
kept=()
for key in "${secrets[@]}"; do
  if [ -n "$(current_value "$key")" ]; then
    kept+=("$key")
  else
    value="$(generate "$key")"
    set_value "$key" "$value"
    generated+=("$key")
  fi
done

[ "${#generated[@]}" -gt 0 ] && echo "generated in $env_file: ${generated[*]}"
[ "${#kept[@]}" -gt 0 ] && echo "kept (already set): ${kept[*]}"
exit 0
