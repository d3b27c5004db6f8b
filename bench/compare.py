#!/usr/bin/env python3
"""Side-by-side benchmark: VirtioNet against DPDK's virtio-user, both driving the same dpdk-testpmd vhost-user backend.

For every round, mode and frame size, each driver gets a freshly started backend and runs for the same time; the
order of the two drivers alternates between rounds (the machine is noisy, so only figures of one run are compared).
The rate that counts is the backend's own count, the same for both drivers: the cumulative RX-packets / TX-packets of
testpmd's periodic NIC statistics, timestamped as each line arrives (testpmd runs line-buffered), differenced over the
steady part of the client's run (from 1.5 s after it started to 0.5 s before it stopped):
  tx        backend rxonly,  its RX-packets  (frames the driver sent)
  rx        backend txonly,  its TX-packets  (frames the driver took; the backend drops what does not fit the ring)
  loopback  backend macswap, its TX-packets  (frames sent back to the driver)
CPU placement (2 cores): the backend forwards on core 0, the driver under test runs on core 1.
Usage: bench/compare.py [--modes tx,rx,loopback] [--sizes 64,1514] [--seconds 5] [--rounds 3] [--interrupt] [--json FILE]
"""
import argparse, json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VNET = os.path.join(ROOT, "artifacts", "vnet", "vnet.dll")
BACKEND_MODE = {"tx": "rxonly", "rx": "txonly", "loopback": "macswap"}
BACKEND_COUNTER = {"tx": "RX-packets", "rx": "TX-packets", "loopback": "TX-packets"}
DPDK_CLIENT_MODE = {"tx": "txonly", "rx": "rxonly", "loopback": "io"}


def start_backend(sock, mode, size, prefix):
    args = ["setpriv", "--pdeathsig", "KILL", "--", "stdbuf", "-oL", "dpdk-testpmd", "-l", "0,1", "--main-lcore", "1", "--no-huge",
            "-m", "512", "--no-pci", f"--file-prefix={prefix}", "--vdev", f"net_vhost0,iface={sock},queues=1", "--",
            "--no-mlockall", "--total-num-mbufs=8192", f"--forward-mode={BACKEND_MODE[mode]}", f"--txpkts={size}",
            "--stats-period", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    lines = []

    def read():
        for line in proc.stdout:
            lines.append((time.monotonic(), line))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + 30
    while not os.path.exists(sock):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit("compare.py: the backend did not start:\n" + "".join(l for _, l in lines)[-2000:])
        time.sleep(0.1)
    return proc, lines


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rate(lines, counter, start, end):
    """Packets per second from the cumulative counter lines that arrived between start and end."""
    points = []
    for t, line in lines:
        m = re.search(counter + r":\s+(\d+)", line)
        if m and start <= t <= end:
            points.append((t, int(m.group(1))))
    if len(points) < 2:
        return 0.0, points
    (t0, c0), (t1, c1) = points[0], points[-1]
    return (c1 - c0) / (t1 - t0), points


def run_virtionet(sock, mode, size, seconds, interrupt=False):
    args = ["taskset", "-c", "1", "dotnet", VNET, "bench", "--vhost-user", sock, "--mode", mode, "--size", str(size),
            "--seconds", str(seconds), "--json"] + (["--mode", "interrupt"] if interrupt else [])
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        sys.exit(f"compare.py: vnet bench failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def run_dpdk(sock, mode, size, seconds, prefix):
    args = ["setpriv", "--pdeathsig", "KILL", "--", "dpdk-testpmd", "-l", "0,1", "--main-lcore", "0", "--no-huge", "-m", "512",
            "--no-pci", f"--file-prefix={prefix}", "--vdev", f"net_virtio_user0,path={sock},queues=1", "--",
            "--no-mlockall", "--total-num-mbufs=8192", f"--forward-mode={DPDK_CLIENT_MODE[mode]}", f"--txpkts={size}",
            "--stats-period", "1"]
    if mode == "loopback":
        args.append("--tx-first")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    time.sleep(seconds + 1.0)
    stop(proc)


def measure(driver, mode, size, seconds, tag):
    workdir = tempfile.mkdtemp(prefix="vnet-bench-")
    sock = os.path.join(workdir, "vh.sock")
    backend, lines = start_backend(sock, mode, size, f"vnb{os.getpid()}{tag}")
    try:
        time.sleep(1)
        started = time.monotonic()
        extra = {}
        if driver in ("virtionet", "virtionet-irq"):
            extra = run_virtionet(sock, mode, size, seconds, interrupt=driver == "virtionet-irq")
        else:
            run_dpdk(sock, mode, size, seconds, f"vnc{os.getpid()}{tag}")
        stopped = time.monotonic()
    finally:
        stop(backend)
        shutil.rmtree(workdir, ignore_errors=True)
    # The client starts in about a second (the .NET runtime, or DPDK's EAL); the steady window leaves that out.
    pps, points = rate(lines, BACKEND_COUNTER[mode], started + 1.5, stopped - 0.5)
    return {"driver": driver, "mode": mode, "size": size, "mpps": round(pps / 1e6, 4),
            "samples": [[round(t - started, 2), c] for t, c in points], "client": extra}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="tx,rx,loopback")
    p.add_argument("--sizes", default="64,1514")
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--interrupt", action="store_true",
                   help="also run VirtioNet in interrupt mode (rx and loopback only), in the same rounds")
    a = p.parse_args()
    for tool in ("dpdk-testpmd", "setpriv", "taskset", "dotnet"):
        if shutil.which(tool) is None:
            sys.exit(f"compare.py: {tool} is not on PATH (run scripts/install-deps)")
    if not os.path.exists(VNET):
        subprocess.run([os.path.join(ROOT, "vnet"), "--help"], stdout=subprocess.DEVNULL, check=True)

    results = []
    n = 0
    for r in range(a.rounds):
        for mode in a.modes.split(","):
            for size in (int(s) for s in a.sizes.split(",")):
                order = ["virtionet", "dpdk"] if r % 2 == 0 else ["dpdk", "virtionet"]
                if a.interrupt and mode != "tx":
                    order.insert(1, "virtionet-irq")
                for driver in order:
                    n += 1
                    res = measure(driver, mode, size, a.seconds, str(n))
                    res["round"] = r + 1
                    results.append(res)
                    print(f"round {r + 1} {mode:8} {size:5} B  {driver:9}  {res['mpps']:.3f} Mpps", file=sys.stderr, flush=True)

    print(f"{'mode':9} {'size':>6}  {'VirtioNet Mpps':>15}  {'DPDK Mpps':>10}  {'ratio':>6}   (median of {a.rounds} rounds, backend-counted)")
    table = []
    for mode in a.modes.split(","):
        for size in (int(s) for s in a.sizes.split(",")):
            v = statistics.median([x["mpps"] for x in results if x["driver"] == "virtionet" and x["mode"] == mode and x["size"] == size])
            d = statistics.median([x["mpps"] for x in results if x["driver"] == "dpdk" and x["mode"] == mode and x["size"] == size])
            ratio = v / d if d else float("nan")
            row = {"mode": mode, "size": size, "virtionet_mpps": v, "dpdk_mpps": d, "ratio": round(ratio, 3)}
            irq = [x["mpps"] for x in results if x["driver"] == "virtionet-irq" and x["mode"] == mode and x["size"] == size]
            if irq:
                row["virtionet_interrupt_mpps"] = statistics.median(irq)
            table.append(row)
            print(f"{mode:9} {size:6}  {v:15.3f}  {d:10.3f}  {ratio:6.2f}" + (f"   interrupt mode {row['virtionet_interrupt_mpps']:.3f}" if irq else ""))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"table": table, "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
