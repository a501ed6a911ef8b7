#!/usr/bin/env bash
# Test harness: a fresh Prosody 13 on 127.0.0.1 with a test CA.
#
#   scripts/prosody.sh start DIR [USER:PASS ...]   prints KEY=VALUE lines:
#       C2S_PORT, DIRECT_TLS_PORT, CA, PID, DOMAIN
#   scripts/prosody.sh stop DIR                    stops it by PID
#   scripts/prosody.sh certs DIR                   only the test CA and leaf
#
# The server also stops by itself: after WAXWING_SERVER_LIFETIME seconds
# (default 1800) or as soon as the process WAXWING_WATCH_PID (if set) exits.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?directory}
here="$(cd "$(dirname "$0")" && pwd)"

stop() {
  [ -f "$dir/prosody.pid" ] || return 0
  local pid; pid=$(cat "$dir/prosody.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  [ -f "$dir/watchdog.pid" ] && kill "$(cat "$dir/watchdog.pid")" 2>/dev/null || true
  rm -f "$dir/prosody.pid" "$dir/watchdog.pid"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

make_certs() {
  local c="$dir/certs"; mkdir -p "$c"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Waxwing Test CA" \
    -keyout "$c/ca.key" -out "$c/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$c/localhost.key" -out "$c/localhost.csr" 2>/dev/null
  cat > "$c/leaf.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,DNS:muc.localhost,IP:127.0.0.1,otherName:1.3.6.1.5.5.7.8.5;UTF8:localhost
EXT
  openssl x509 -req -in "$c/localhost.csr" -CA "$c/ca.pem" -CAkey "$c/ca.key" -CAcreateserial \
    -days 2 -extfile "$c/leaf.ext" -out "$c/localhost.crt" 2>/dev/null
  chmod 644 "$c"/*
}

start() {
  mkdir -p "$dir/data"
  make_certs
  local c2s direct http component
  c2s=$(free_port); direct=$(free_port); http=$(free_port); component=$(free_port)
  local as_root=""; [ "$(id -u)" = 0 ] && as_root="run_as_root = true"
  # SASL2 + Bind2 + inline SM + FAST (prosody-modules); WAXWING_PROSODY_SASL2=0
  # gives a classic RFC 6120 server to test the fallback path against.
  local sasl2_modules='"sasl2"; "sasl2_bind2"; "sasl2_sm"; "sasl2_fast";'
  [ "${WAXWING_PROSODY_SASL2:-1}" = 0 ] && sasl2_modules=""
  cat > "$dir/prosody.cfg.lua" <<CFG
$as_root
pidfile = "$dir/prosody.pid.internal"
data_path = "$dir/data"
log = { ${WAXWING_PROSODY_LOG_LEVEL:-info} = "$dir/prosody.log"; error = "$dir/prosody.err" }
interfaces = { "127.0.0.1" }
c2s_ports = { $c2s }
c2s_direct_tls_ports = { $direct }
s2s_ports = { }
http_ports = { $http }
http_interfaces = { "127.0.0.1" }
https_ports = { }
admin_socket = "$dir/prosody.sock"
network_settings = { nagle = false }
modules_disabled = { "s2s" }
modules_enabled = {
  "roster"; "saslauth"; "tls"; "disco"; "ping"; "smacks"; "carbons"; "mam";
  "offline"; "private"; "pep"; "blocklist"; "version"; "time"; "uptime"; "csi_simple";
  "cloud_notify"; "cloud_notify_encrypted";
  -- XEP-0474: every test login checks the server's downgrade protection hash.
  "sasl_ssdp";
  -- Tests reach into the server (e.g. a room forgetting an occupant).
  "admin_shell";
  $sasl2_modules
}
component_ports = { $component }
component_interface = "127.0.0.1"
c2s_require_encryption = true
authentication = "internal_hashed"
storage = "internal"
default_archive_policy = true
archive_expires_after = "1d"
smacks_hibernation_time = 60
${WAXWING_PROSODY_EXTRA:-}
ssl = { certificate = "$dir/certs/localhost.crt"; key = "$dir/certs/localhost.key" }
VirtualHost "localhost"
-- A test XEP-0357 app server connects here (scripts/push_app_server.py).
Component "push.localhost"
  component_secret = "push-component-secret"
-- Group chats (XEP-0045) with their archives (XEP-0313); occupant-id and
-- self-ping are built into Prosody 13's mod_muc.
Component "muc.localhost" "muc"
  modules_enabled = { "muc_mam" }
CFG
  local lifetime=${WAXWING_SERVER_LIFETIME:-1800}
  # setsid: the server must not die with the caller's terminal, only by PID.
  setsid timeout "$lifetime" prosody -F --config "$dir/prosody.cfg.lua" >"$dir/stdout.log" 2>&1 < /dev/null &
  echo $! > "$dir/prosody.pid"
  local pid; pid=$(cat "$dir/prosody.pid")
  if [ -n "${WAXWING_WATCH_PID:-}" ]; then
    ( while kill -0 "$WAXWING_WATCH_PID" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
      kill "$pid" 2>/dev/null ) >/dev/null 2>&1 < /dev/null &
    echo $! > "$dir/watchdog.pid"
  fi
  for _ in $(seq 100); do
    (echo > "/dev/tcp/127.0.0.1/$c2s") 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/stdout.log" >&2; exit 1; }
    sleep 0.05
  done
  shift 2 || true
  for cred in "$@"; do
    prosodyctl --config "$dir/prosody.cfg.lua" register "${cred%%:*}" localhost "${cred#*:}" >/dev/null 2>&1
  done
  echo "C2S_PORT=$c2s"
  echo "DIRECT_TLS_PORT=$direct"
  echo "COMPONENT_PORT=$component"
  echo "CA=$dir/certs/ca.pem"
  echo "PID=$pid"
  echo "DOMAIN=localhost"
}

case "$cmd" in
  start) start "$@" ;;
  certs) mkdir -p "$dir"; make_certs; echo "CA=$dir/certs/ca.pem" ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
