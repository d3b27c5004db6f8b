#!/usr/bin/env python3
"""Round-trip latency of VirtioNet through a dpdk-testpmd macswap backend, with the kernel's own path beside it in the
same run. A benchmark, not a test: run as root on a quiet machine.

What runs, in order (each row a fresh client; the backend stays up):
  * VirtioNet, `vnet bench --mode latency`: 64-byte frames carrying their send time, sent to testpmd's vhost-user port
    in macswap mode, which sends each one back; the time from handing a frame to the device to taking it back from the
    receive ring goes into an HdrHistogram. Poll and interrupt mode, at a fixed rate (--rate, one frame at a time) and
    under load (rate 0: the ring kept full, so the figure includes the queueing a full ring adds).
  * The reference, the kernel path: sockperf ping-pong (UDP, --full-rtt, 64-byte messages, the same fixed rate) between
    two network namespaces joined by a veth pair, addresses in 169.254.0.0/16. It is a different path (two trips through
    the kernel's UDP/IP stack and a veth instead of shared-memory rings and a DPDK forwarder), named so in the output: it
    shows what a program's round trip through the kernel costs on this machine at the same moment. DPDK's own
    latencystats measure only the time a packet spends inside testpmd, not a round trip, so they are not used.
CPU placement (2 cores): testpmd forwards on core 0, the client runs on core 1; sockperf's server on 0, client on 1.
--operations poll,interrupt,adaptive picks VirtioNet's operation modes (default poll,interrupt); --fixed-rate-only skips
the rows under load and the kernel's. Each VirtioNet row also gives the CPU time of the client process per frame sent
(cpuNsPerFrame of vnet bench --json: idle time included, so it shows what a mode costs at that rate), and with several
modes the same-round ratios of that figure to interrupt mode's.
Usage: bench/latency.py [--seconds 5] [--rate 10000] [--rounds 3] [--operations poll,interrupt] [--fixed-rate-only] [--json FILE]
"""
import argparse, json, os, platform, re, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VNET = os.path.join(ROOT, "vnet")
SOCKPERF = re.compile(r"(<MAX> observation|percentile (50\.000|99\.000|99\.900))\s*=\s*([0-9.]+)")


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def start_backend(sock, prefix):
    args = ["setpriv", "--pdeathsig", "KILL", "--", "dpdk-testpmd", "-l", "0,1", "--main-lcore", "1", "--no-huge", "-m", "512",
            "--no-pci", f"--file-prefix={prefix}", "--vdev", f"net_vhost0,iface={sock},queues=1", "--", "--no-mlockall",
            "--total-num-mbufs=8192", "--forward-mode=macswap"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE)
    deadline = time.time() + 30
    while not os.path.exists(sock):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit("latency.py: the testpmd backend did not start")
        time.sleep(0.1)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def vnet_row(sock, operation, rate, seconds):
    out = subprocess.run([VNET, "bench", "--mode", "latency", "--mode", operation, "--rate", str(rate), "--vhost-user", sock,
                          "--seconds", str(seconds), "--cpu", "1", "--json"], capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        sys.exit(f"latency.py: vnet bench failed: {out.stderr.strip()}")
    r = json.loads(out.stdout)
    return {"p50": r["p50Ns"] / 1000, "p99": r["p99Ns"] / 1000, "p999": r["p999Ns"] / 1000, "max": r["maxNs"] / 1000,
            "lost": r["lost"], "measured": r["measured"], "cpuNsPerFrame": r.get("cpuNsPerFrame"), "gc": r["gcCollections"], "allocated": r["allocatedBytes"], "raw": r}


def kernel_row(rate, seconds, tag):
    a, b = f"vnetlat-a-{tag}", f"vnetlat-b-{tag}"
    va, vb = f"vla{tag}"[:15], f"vlb{tag}"[:15]
    server = None
    try:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b], check=True)
        subprocess.run(["ip", "-n", a, "addr", "add", "169.254.77.1/24", "dev", va], check=True)
        subprocess.run(["ip", "-n", b, "addr", "add", "169.254.77.2/24", "dev", vb], check=True)
        for ns, dev in ((a, va), (b, vb)):
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        server = subprocess.Popen(["ip", "netns", "exec", a, "taskset", "-c", "0", "sockperf", "server", "-i", "169.254.77.1", "-p", "11111"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        args = ["ip", "netns", "exec", b, "taskset", "-c", "1", "sockperf", "ping-pong", "-i", "169.254.77.1", "-p", "11111", "-m", "64",
                "--full-rtt", "-t", str(seconds)]
        args += ["--mps", str(rate)]
        out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
        figures = {}
        for m in SOCKPERF.finditer(out.stdout + out.stderr):
            key = "max" if m.group(1).startswith("<MAX>") else {"50.000": "p50", "99.000": "p99", "99.900": "p999"}[m.group(2)]
            figures[key] = float(m.group(3))
        if len(figures) < 4:
            sys.exit("latency.py: sockperf gave no percentiles:\n" + out.stdout[-2000:] + out.stderr[-2000:])
        return figures
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--rate", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--operations", default="poll,interrupt")
    p.add_argument("--fixed-rate-only", action="store_true")
    args = p.parse_args()
    subprocess.run([VNET, "--help"], stdout=subprocess.DEVNULL, check=True)  # builds the tool first when needed
    operations = args.operations.split(",")
    rows = [(f"VirtioNet {op}", op, args.rate) for op in operations]
    if not args.fixed_rate_only:
        rows += [(f"VirtioNet {op}, under load", op, 0) for op in operations]
    results = {name: [] for name, _, _ in rows}
    if not args.fixed_rate_only:
        results["kernel UDP over veth (sockperf)"] = []
    tag = str(os.getpid())
    tmp = tempfile.mkdtemp(prefix="vnet-lat-")
    sock = os.path.join(tmp, "vh.sock")
    backend = start_backend(sock, f"vnetlat{tag}")
    try:
        for _ in range(args.rounds):
            for name, operation, rate in rows:
                results[name].append(vnet_row(sock, operation, rate, args.seconds))
            if not args.fixed_rate_only:
                results["kernel UDP over veth (sockperf)"].append(kernel_row(args.rate, args.seconds, tag))
    finally:
        stop(backend)
        subprocess.run(["rm", "-rf", tmp, f"/var/run/dpdk/vnetlat{tag}"])

    print(f"CPU: {cpu_model()}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds of {args.seconds} s, "
          f"fixed rate {args.rate} frames/s; figures are the median over rounds, in microseconds (round trip)")
    print()
    print("| path | rate | p50 | p99 | p99.9 | max | lost | CPU ns per frame (rounds) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, runs in results.items():
        rate = "as fast as possible" if "under load" in name else f"{args.rate}/s"
        med = {k: statistics.median(r[k] for r in runs) for k in ("p50", "p99", "p999", "max")}
        lost = sum(r.get("lost", 0) for r in runs)
        cpu = [r.get("cpuNsPerFrame") for r in runs if r.get("cpuNsPerFrame") is not None]
        cpu_text = f"{statistics.median(cpu):.0f} ({', '.join(f'{x:.0f}' for x in cpu)})" if cpu else "-"
        print(f"| {name} | {rate} | {med['p50']:.1f} | {med['p99']:.1f} | {med['p999']:.1f} | {med['max']:.1f} | {lost if 'VirtioNet' in name else '-'} | {cpu_text} |")
    base = results.get("VirtioNet interrupt")
    if base and all(r.get("cpuNsPerFrame") for r in base):
        print()
        for name, runs in results.items():
            if name.startswith("VirtioNet") and "under load" not in name and name != "VirtioNet interrupt":
                ratios = [r["cpuNsPerFrame"] / b["cpuNsPerFrame"] for r, b in zip(runs, base)]
                print(f"CPU per frame, {name} / VirtioNet interrupt, same-round ratios: {', '.join(f'{x:.2f}' for x in ratios)}; "
                      f"median {statistics.median(ratios):.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_model(), "rate": args.rate, "seconds": args.seconds, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
