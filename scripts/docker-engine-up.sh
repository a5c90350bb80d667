#!/usr/bin/env bash
# docker-engine-up.sh - one more Docker engine on this machine: a second `dockerd` with its own
# socket, data root, exec root, pidfile, containerd namespace, default bridge and address pool.
# It stands in for "another host's engine" (scale-out tests and benchmarks, Celery workers).
#
#   scripts/docker-engine-up.sh [up]           start it unless it answers; print its DOCKER_HOST
#   scripts/docker-engine-up.sh load IMAGE...  copy images from the main engine (docker save | load)
#   scripts/docker-engine-up.sh down           stop it and remove its bridges, rule and directories
#
# Settings: COWORLD_ENGINE_NAME (cw-b2: the bridge's name, and the directory /tmp/coworld-engine-<name>),
# COWORLD_ENGINE_NET (10.213: a /16 of which the bridge takes .0.1/24 and networks get /24s from
# .64.0/18; refused when a route into it exists already).
#
# Like Docker's own "run multiple daemons" recipe, this engine leaves the host's iptables to the main
# engine (--iptables=false --ip-masq=false), so the two never rewrite each other's chains. The host's
# FORWARD policy is DROP, so one rule (comment `coworld-engine-<name>`) lets traffic between containers
# on the same bridge through (games and their players); traffic between two of its networks and from
# them to the outside stays dropped, and its containers get no NAT to the outside. The platform's
# own per-episode host rule (runtime/firewall.py) applies on this engine as on the main one.
set -euo pipefail
NAME="${COWORLD_ENGINE_NAME:-cw-b2}"
NET="${COWORLD_ENGINE_NET:-10.213}"
ROOT="/tmp/coworld-engine-$NAME"
SOCK="$ROOT/docker.sock"
DOCKER="${DOCKER:-/usr/bin/docker}"
[[ -x $DOCKER ]] || DOCKER=docker
ACTION="${1:-up}"
log() { printf '[docker-engine %s %(%H:%M:%S)T] %s\n' "$NAME" -1 "$*" >&2; }
[[ "$NAME" =~ ^[a-z][a-z0-9-]{0,11}$ ]] ||
  { echo "COWORLD_ENGINE_NAME must be 1-12 of [a-z0-9-] (a bridge name), got '$NAME'" >&2; exit 2; }
[[ "$NET" =~ ^(10|172|192)\.[0-9]{1,3}$ ]] ||
  { echo "COWORLD_ENGINE_NET must be the first two octets of a private /16, got '$NET'" >&2; exit 2; }
COMMENT="coworld-engine-$NAME"
RULE=(FORWARD -s "$NET.0.0/16" -d "$NET.0.0/16" -m physdev --physdev-is-bridged
      -m comment --comment "$COMMENT" -j ACCEPT)

answers() { "$DOCKER" -H "unix://$SOCK" info >/dev/null 2>&1; }
our_bridges() { ip -o -4 addr show | awk -v net="$NET." 'index($4, net) == 1 {print $2}' | sort -u; }

case "$ACTION" in
  up)
    if ! answers; then
      [[ -x /usr/sbin/dockerd ]] || { echo "dockerd is missing: run scripts/setup.sh first" >&2; exit 2; }
      # Another interface on that /16 (not one of ours) would make container traffic ambiguous.
      foreign="$(ip -4 route | awk -v net="$NET." 'index($1, net) == 1 {print $3}' | grep -vx "$NAME" |
                 grep -v '^br-' || true)"
      [[ -z "$foreign" ]] || { echo "$NET.0.0/16 is already routed via $foreign: set COWORLD_ENGINE_NET" >&2; exit 2; }
      mkdir -p "$ROOT/data" "$ROOT/exec"
      if ! ip link show "$NAME" >/dev/null 2>&1; then
        ip link add name "$NAME" type bridge
        ip addr add "$NET.0.1/24" dev "$NAME"
      fi
      ip link set "$NAME" up
      iptables -C "${RULE[@]}" 2>/dev/null || iptables -I "${RULE[@]:0:1}" 1 "${RULE[@]:1}"
      log "starting dockerd on $SOCK (data $ROOT/data, bridge $NAME $NET.0.1/24)"
      setsid nohup /usr/sbin/dockerd --host "unix://$SOCK" --data-root "$ROOT/data" \
        --exec-root "$ROOT/exec" --pidfile "$ROOT/dockerd.pid" --bridge "$NAME" \
        --default-address-pool "base=$NET.64.0/18,size=24" --iptables=false --ip-masq=false \
        --containerd-namespace "$NAME" --containerd-plugins-namespace "$NAME-plugins" \
        >"$ROOT/dockerd.log" 2>&1 </dev/null &
      for _ in $(seq 1 120); do answers && break; sleep 0.5; done
      answers || { echo "dockerd $NAME did not answer; see $ROOT/dockerd.log" >&2; tail -5 "$ROOT/dockerd.log" >&2; exit 1; }
    fi
    echo "unix://$SOCK"
    ;;
  load)
    shift
    answers || { echo "engine $NAME is not running: $0 up" >&2; exit 2; }
    for image in "$@"; do
      if ! "$DOCKER" -H "unix://$SOCK" image inspect "$image" >/dev/null 2>&1; then
        log "loading $image from the main engine"
        "$DOCKER" save "$image" | "$DOCKER" -H "unix://$SOCK" load -q >&2
      fi
    done
    ;;
  down)
    if [[ -s "$ROOT/dockerd.pid" ]] && kill -0 "$(cat "$ROOT/dockerd.pid")" 2>/dev/null; then
      pid="$(cat "$ROOT/dockerd.pid")"
      kill -TERM "$pid"  # dockerd stops its containers and its managed containerd
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
      log "dockerd stopped"
    fi
    # After a hard stop its managed containerd (and the shims it started) may remain.
    ctr_pid="$(cat "$ROOT/exec/containerd/containerd.pid" 2>/dev/null || true)"
    if [[ -n "$ctr_pid" ]] && kill -0 "$ctr_pid" 2>/dev/null; then
      kill -TERM "$ctr_pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$ctr_pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$ctr_pid" 2>/dev/null || true
    fi
    { grep -o " $ROOT/[^ ]*" /proc/mounts || true; } | sort -r |
      while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    while iptables -C "${RULE[@]}" 2>/dev/null; do iptables -D "${RULE[@]}"; done
    for bridge in $(our_bridges); do ip link del "$bridge" 2>/dev/null || true; done
    ip link del "$NAME" 2>/dev/null || true
    rm -rf "$ROOT"
    ;;
  *)
    echo "usage: $0 [up | load IMAGE... | down]" >&2
    exit 2
    ;;
esac
