#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 machine
# that has only Rust: Prosody 13 (bookworm-backports), JNA + JUnit for the
# Kotlin JVM tests, the Kotlin compiler (npm) and a Python venv with slixmpp.
# (The Swift toolchain lives in a Debian 13 root that scripts/test-swift.sh
# prepares itself.) Idempotent: every step checks first, so a second run
# takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${WAXWING_TOOLS:-$PWD/target/tools}"
mkdir -p "$TOOLS"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
command -v prosody >/dev/null 2>&1 && prosody --version 2>/dev/null | grep -q 'Prosody 13' || need_apt+=(prosody)
[ -f /usr/share/java/jna.jar ] || need_apt+=(libjna-java)
[ -f /usr/share/java/junit4.jar ] || need_apt+=(junit4)
command -v javac >/dev/null 2>&1 || need_apt+=(openjdk-17-jdk-headless)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
python3 -c 'import venv' 2>/dev/null || need_apt+=(python3-venv)
# profanity (OMEMO 0.3 via libsignal-protocol-c), driven headless in tmux.
command -v profanity >/dev/null 2>&1 || need_apt+=(profanity)
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)

if [ ${#need_apt[@]} -gt 0 ]; then
  # Backports holds Prosody 13 + prosody-modules with SASL2/Bind2/FAST; derive
  # its source entry from the machine's own mirror rather than naming a host.
  if [ ! -f /etc/apt/sources.list.d/waxwing-backports.sources ]; then
    src=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
    if [ -n "$src" ]; then
      awk 'BEGIN{RS="";ORS="\n\n"} NR==1' "$src" \
        | sed 's/^Suites:.*/Suites: bookworm-backports/' \
        | as_root tee /etc/apt/sources.list.d/waxwing-backports.sources >/dev/null
    else
      line=$(grep -m1 '^deb ' /etc/apt/sources.list | awk '{print $2}')
      echo "deb $line bookworm-backports main" | as_root tee /etc/apt/sources.list.d/waxwing-backports.list >/dev/null
    fi
  fi
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq openssl libjna-java junit4 python3-venv profanity tmux >/dev/null
  command -v javac >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq -t bookworm-backports prosody prosody-modules lua-unbound >/dev/null
fi

# Kotlin compiler distribution from npm (no Maven Central here).
if [ ! -x "$TOOLS/kotlin/node_modules/kotlin-compiler/bin/kotlinc" ]; then
  npm install --silent --prefix "$TOOLS/kotlin" kotlin-compiler@2.4.20 >/dev/null
fi

# Python peers: slixmpp bots, slixmpp-omemo and python-omemo (OMEMO oracle
# and bots; oldmemo is AGPL and only ever run as a test peer). All wheels,
# nothing compiles.
if [ ! -x "$TOOLS/venv/bin/python" ] \
  || ! "$TOOLS/venv/bin/python" -c 'import slixmpp, slixmpp_omemo, oldmemo.etree, twomemo.etree' 2>/dev/null; then
  [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --only-binary=:all: slixmpp==1.17.0 slixmpp-omemo==2.2.0 \
    omemo==2.1.0 oldmemo==2.1.0 twomemo==2.1.0 xmlschema \
    || "$TOOLS/venv/bin/pip" install -q --only-binary=:all: slixmpp==1.17.0 slixmpp-omemo==2.2.0 \
      omemo oldmemo twomemo xmlschema
fi
echo "setup: ready (tools in $TOOLS)"
