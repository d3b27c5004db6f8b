#!/usr/bin/env bash
# Time from SIGKILL of the driver to traffic flowing again: `vnet up` on a machine started with `vnet machine start`,
# a ping every 20 ms from the namespace to QEMU's gateway (10.0.2.2), the driver killed with SIGKILL and started again
# ROUNDS times. Prints, per round, when the new driver said it carries traffic and when the first echo reply came back.
# A benchmark, not a test (the test of the same is UpRestartTests). Usage (root): bench/restart-time.sh [ROUNDS] [VNET]
# VNET is the command that runs vnet (default: the repository's ./vnet, i.e. dotnet vnet.dll; give the NativeAOT
# binary from `dotnet publish src/vnet -r linux-x64 -p:PublishAot=true` to measure without JIT start-up).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-3}"
vnet="${2:-$root/vnet}"
machine="rtime$$" ns="vnetrtime-$$" tap="vrt$$"
D="$(mktemp -d /tmp/vnet-rtime-XXXXXX)"
up_pid="" ping_pid=""

cleanup() {
    [[ -n $ping_pid ]] && kill "$ping_pid" 2>/dev/null || true
    [[ -n $up_pid ]] && { kill -TERM "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; }
    $vnet machine stop "$machine" --force >/dev/null 2>&1 || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT

now() { date +%s.%N; }
start_up() {  # starts vnet up, waits until it carries traffic; sets up_pid
    local log="$D/up-$1.log"
    $vnet up --machine-name "$machine" --netns "$ns" --tap "$tap" --dhcp 2>"$log" & up_pid=$!
    for _ in $(seq 3000); do grep -q "carries traffic" "$log" && return 0; kill -0 "$up_pid" 2>/dev/null || break; sleep 0.01; done
    cat "$log" >&2; exit 1
}

$vnet machine start "$machine" >/dev/null
ip netns add "$ns"
start_up 0
ip netns exec "$ns" ping -D -n -i 0.02 10.0.2.2 >"$D/ping.log" 2>&1 & ping_pid=$!
sleep 2
for round in $(seq "$rounds"); do
    t0=$(now)
    kill -KILL "$up_pid"; wait "$up_pid" 2>/dev/null || true
    start_up "$round"
    t1=$(now)
    # The first echo reply to a request sent after the kill (reply time minus its round trip).
    t2=""
    for _ in $(seq 500); do
        t2="$(awk -v t0="$t0" '/bytes from/ { s = substr($1, 2, length($1) - 2); for (i = 1; i <= NF; i++) if ($i ~ /^time=/) rtt = substr($i, 6) / 1000; if (s - rtt > t0 + 0) { print s; exit } }' "$D/ping.log")"
        [[ -n $t2 ]] && break
        sleep 0.01
    done
    awk -v r="$round" -v a="$t0" -v b="$t1" -v c="${t2:-0}" 'BEGIN { printf "round %d: carries traffic after %.0f ms, first echo reply after %s\n", r, (b - a) * 1000, (c > 0 ? sprintf("%.0f ms", (c - a) * 1000) : "none") }'
    sleep 2
done
