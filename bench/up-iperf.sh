#!/usr/bin/env bash
# The kernel's TCP through two `vnet up` on one Open vSwitch-DPDK bridge, side by side with a veth pair between the same
# two namespaces (the kernel's own best case), in one run: iperf3 with one and four streams each way, and
# request/response latency (ping RTT, and a one-byte TCP request/response loop). A benchmark, not a test: figures vary
# with the machine and its load; run as root on a quiet machine. Usage: bench/up-iperf.sh [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-10}"
id="$$"
a="vnetbench-a-$id" b="vnetbench-b-$id"
D="$(mktemp -d /tmp/vnet-bench-ovs-XXXXXX)"
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    # The daemon's control socket is named after its program, ovs-vswitchd-dpdk; its pidfile is the fallback.
    OVS_RUNDIR=$D ovs-appctl -t ovs-vswitchd-dpdk exit 2>/dev/null || true
    [[ -f $D/ovs-vswitchd-dpdk.pid ]] && kill "$(cat "$D/ovs-vswitchd-dpdk.pid")" 2>/dev/null || true
    OVS_RUNDIR=$D ovs-appctl -t ovsdb-server exit 2>/dev/null || true
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    rm -rf "$D" "/var/run/dpdk/vnetbench$id"
}
trap cleanup EXIT

"$root/vnet" --help >/dev/null  # builds the tool first when needed

# A private OVS-DPDK, as the README describes it.
export OVS_RUNDIR=$D OVS_DBDIR=$D OVS_LOGDIR=$D
ovsdb-tool create "$D/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server "$D/conf.db" --remote=punix:"$D/db.sock" --pidfile --detach --log-file --no-chdir
ovs-vsctl --no-wait init
ovs-vsctl --no-wait set Open_vSwitch . other_config:dpdk-init=true other_config:per-port-memory=true \
  other_config:dpdk-extra="--no-huge -m 512 --legacy-mem --no-shconf --no-pci --file-prefix=vnetbench$id" \
  other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x2
unshare --net -- /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk unix:"$D/db.sock" --pidfile --detach --log-file --no-chdir
ovs-vsctl --timeout=30 add-br br0 -- set bridge br0 datapath_type=netdev
ovs-vsctl --timeout=30 add-port br0 vu0 -- set Interface vu0 type=dpdkvhostuserclient options:vhost-server-path="$D/vu0.sock"
ovs-vsctl --timeout=30 add-port br0 vu1 -- set Interface vu1 type=dpdkvhostuserclient options:vhost-server-path="$D/vu1.sock"

ip netns add "$a"; ip netns add "$b"
"$root/vnet" up --netns "$a" --tap vnb0 --vhost-user "$D/vu0.sock" --vhost-user-client 2>"$D/up-a.log" & pids+=($!)
"$root/vnet" up --netns "$b" --tap vnb1 --vhost-user "$D/vu1.sock" --vhost-user-client 2>"$D/up-b.log" & pids+=($!)
for f in "$D/up-a.log" "$D/up-b.log"; do
    for _ in $(seq 300); do grep -q "carries traffic" "$f" && break; sleep 0.2; done
    grep -q "carries traffic" "$f" || { cat "$f" >&2; exit 1; }
done
ip -n "$a" link set lo up; ip -n "$b" link set lo up
ip -n "$a" addr add 10.77.0.1/24 dev vnb0; ip -n "$b" addr add 10.77.0.2/24 dev vnb1

# The veth pair between the same namespaces, its own subnet.
ip link add vbv0 netns "$a" type veth peer name vbv1 netns "$b"
ip -n "$a" addr add 10.78.0.1/24 dev vbv0; ip -n "$b" addr add 10.78.0.2/24 dev vbv1
ip -n "$a" link set vbv0 up; ip -n "$b" link set vbv1 up
ip netns exec "$a" ping -c 2 -W 5 10.77.0.2 >/dev/null
ip netns exec "$a" ping -c 2 -W 5 10.78.0.2 >/dev/null

rr() {  # one-byte TCP request/response transactions per second from A to B at $1
    ip netns exec "$b" python3 -c '
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind((sys.argv[1],5301)); s.listen(1)
c,_=s.accept(); c.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)
while True:
    d=c.recv(1)
    if not d: break
    c.sendall(d)' "$1" & local server=$!
    sleep 0.5
    ip netns exec "$a" python3 -c '
import socket,sys,time
c=socket.create_connection((sys.argv[1],5301)); c.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)
n=0; end=time.time()+float(sys.argv[2]); start=time.time()
while time.time()<end:
    c.sendall(b"x"); c.recv(1); n+=1
el=time.time()-start; print("%.0f transactions/s, %.1f us mean round trip" % (n/el, el/n*1e6))' "$1" "$seconds"
    wait "$server" 2>/dev/null || true
}
iperf() {  # Gbit/s from A to B at $1 with $2 streams
    ip netns exec "$b" iperf3 -s -1 -p 5201 >/dev/null 2>&1 & local server=$!
    sleep 0.5
    ip netns exec "$a" iperf3 -c "$1" -p 5201 -P "$2" -t "$seconds" -J | python3 -c 'import json,sys; print("%.2f Gbit/s" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
    wait "$server" 2>/dev/null || true
}

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores (shared with other work: figures vary run to run)"
echo "command: bench/up-iperf.sh $seconds"
printf '%-44s %-28s %-28s\n' "measure" "vnet up + OVS-DPDK" "veth pair"
printf '%-44s %-28s %-28s\n' "iperf3 TCP, 1 stream" "$(iperf 10.77.0.2 1)" "$(iperf 10.78.0.2 1)"
printf '%-44s %-28s %-28s\n' "iperf3 TCP, 4 streams" "$(iperf 10.77.0.2 4)" "$(iperf 10.78.0.2 4)"
printf '%-44s %-28s %-28s\n' "ping RTT (avg of 200, 5 ms apart)" \
    "$(ip netns exec "$a" ping -q -c 200 -i 0.005 10.77.0.2 | sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1 ms/p')" \
    "$(ip netns exec "$a" ping -q -c 200 -i 0.005 10.78.0.2 | sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1 ms/p')"
printf '%-44s %-28s %-28s\n' "TCP request/response (1 byte, TCP_NODELAY)" "$(rr 10.77.0.2)" "$(rr 10.78.0.2)"
echo "drops and counters per queue, as each vnet up logged them at exit:"
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()
grep -h "queue 0:" "$D/up-a.log" "$D/up-b.log" || true
