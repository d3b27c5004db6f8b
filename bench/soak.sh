#!/usr/bin/env bash
# A soak of `vnet up`: the kernel's TCP through VirtioNet in both directions at full rate (iperf3 --bidir) for a long
# time, with the driver process's memory (RSS), file descriptors and threads sampled every few seconds; at the end,
# checks that nothing is left behind (TAP, namespaces, QEMU, shared memory, control socket). A benchmark, not a test.
#
# Topology: namespace NEAR -- TAP served by `vnet up` -- VirtioNet -- QEMU's virtio-net (riscv64 virt) -- QEMU's own
# `-netdev tap` -- namespace FAR; iperf3's server in FAR, its client in NEAR.
#
# Usage (root): bench/soak.sh [SECONDS (default 600)] [SAMPLE-INTERVAL (default 5)] [CSV (default bench/results/soak-DATE.csv)]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-600}"
interval="${2:-5}"
csv="${3:-$root/bench/results/soak-$(date -u +%Y%m%dT%H%M%SZ).csv}"
id="$$"
near="vnetsoak-n-$id" far="vnetsoak-f-$id" tap="vsk$id" fartap="vsf$id" name="soak$id"
D="$(mktemp -d /tmp/vnet-soak-XXXXXX)"
up_pid="" server_pid=""

cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    [[ -n $up_pid ]] && { kill -TERM "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; }
    ip netns del "$near" 2>/dev/null || true
    ip netns del "$far" 2>/dev/null || true
    ip link del "$fartap" 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT

command -v iperf3 >/dev/null || { echo "soak: iperf3 is missing (scripts/install-deps installs it)" >&2; exit 1; }
"$root/vnet" --help >/dev/null  # builds the tool first when needed
mkdir -p "$(dirname "$csv")"

ip netns add "$near"; ip netns add "$far"
ip -n "$near" link set lo up; ip -n "$far" link set lo up
ip tuntap add dev "$fartap" mode tap vnet_hdr
"$root/vnet" up --name "$name" --netns "$near" --tap "$tap" --netdev "tap=$fartap" 2>"$D/up.log" & up_pid=$!
for _ in $(seq 600); do grep -q "carries traffic" "$D/up.log" && break; kill -0 "$up_pid" 2>/dev/null || break; sleep 0.2; done
grep -q "carries traffic" "$D/up.log" || { cat "$D/up.log" >&2; exit 1; }
qemu_pid="$(pgrep -f "ifname=$fartap" | head -1 || true)"

# QEMU holds its TAP open; moved into FAR it is the kernel there.
ip link set "$fartap" netns "$far"
ip -n "$far" addr add 10.79.0.1/24 dev "$fartap"; ip -n "$far" link set "$fartap" up
ip -n "$near" addr add 10.79.0.2/24 dev "$tap"
ip netns exec "$near" ping -c 2 -W 5 10.79.0.1 >/dev/null

ip netns exec "$far" iperf3 -s -1 >"$D/server.log" 2>&1 & server_pid=$!
sleep 0.5

sample() {  # seconds-since-start,rss-kib,anon-kib,file-kib,shmem-kib,fds,threads of the vnet up process
    local status rss anon file shmem threads fds
    status="$(cat "/proc/$up_pid/status")"
    rss="$(awk '/^VmRSS:/ {print $2}' <<<"$status")"
    # VmRSS = RssAnon (the GC heap, native allocations, stacks, JIT'd code) + RssFile (mapped files: the runtime and
    # assemblies) + RssShmem (shared memory: the guest RAM file QEMU and the driver both map, touched page by page as
    # rings and buffers are used). Which one moves says where growth comes from.
    anon="$(awk '/^RssAnon:/ {print $2}' <<<"$status")"
    file="$(awk '/^RssFile:/ {print $2}' <<<"$status")"
    shmem="$(awk '/^RssShmem:/ {print $2}' <<<"$status")"
    threads="$(awk '/^Threads:/ {print $2}' <<<"$status")"
    fds="$(ls "/proc/$up_pid/fd" | wc -l)"
    echo "$1,$rss,$anon,$file,$shmem,$fds,$threads"
}

echo "seconds,rss_kib,anon_kib,file_kib,shmem_kib,fds,threads" >"$csv"
start=$(date +%s)
ip netns exec "$near" iperf3 -c 10.79.0.1 --bidir -t "$seconds" -i 0 --json >"$D/client.json" 2>&1 & client_pid=$!
while kill -0 "$client_pid" 2>/dev/null; do
    sample $(( $(date +%s) - start )) >>"$csv"
    sleep "$interval"
done
wait "$client_pid" || { echo "soak: iperf3 failed:" >&2; cat "$D/client.json" >&2; exit 1; }
sample $(( $(date +%s) - start )) >>"$csv"

kill -TERM "$up_pid"; wait "$up_pid" || true; up_pid=""
server_pid=""

# Throughput both ways, from iperf3's own summary.
python3 - "$D/client.json" "$csv" <<'PY'
import csv, json, sys
j = json.load(open(sys.argv[1]))
end = j["end"]
sent = end["sum_sent"]["bits_per_second"] / 1e9
back = end.get("sum_sent_bidir_reverse", end.get("sum_received_bidir_reverse", {})).get("bits_per_second", 0) / 1e9
rows = list(csv.DictReader(open(sys.argv[2])))
def span(key):
    v = [int(r[key]) for r in rows]
    return f"{key}: first {v[0]}, last {v[-1]}, min {min(v)}, max {max(v)}"
print(f"iperf3 --bidir: near->far {sent:.2f} Gbit/s, far->near {back:.2f} Gbit/s, retransmits {end['sum_sent'].get('retransmits', '?')}")
print(f"{len(rows)} samples; " + "; ".join(span(k) for k in ("rss_kib", "anon_kib", "file_kib", "shmem_kib", "fds", "threads")))
PY

# Nothing left behind: the TAP (with its namespace still there), QEMU, its shared memory, the control socket.
left=0
ip -n "$near" link show "$tap" >/dev/null 2>&1 && { echo "soak: LEFT: TAP $tap" >&2; left=1; }
[[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null && { echo "soak: LEFT: QEMU pid $qemu_pid" >&2; left=1; }
[[ -e /run/vnet/$name.sock || -e /run/vnet/$name.tap || -e /run/vnet/$name.lock ]] && { echo "soak: LEFT: /run/vnet/$name.*" >&2; left=1; }
grep -q "stopped; TAP removed" "$D/up.log" || { echo "soak: vnet up did not stop cleanly:" >&2; tail -5 "$D/up.log" >&2; left=1; }
grep "queue 0:" "$D/up.log" | tail -1
[[ $left == 0 ]] && echo "nothing left after stop"
echo "samples: $csv"
exit $left
