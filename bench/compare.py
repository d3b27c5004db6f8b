#!/usr/bin/env python3
"""Side-by-side benchmark: VirtioNet against DPDK's virtio-user, both driving the same dpdk-testpmd vhost-user backend.

Fairness, in the order the rules are applied:
  * Same backend, fresh each run: for every round, mode and frame size, each driver gets a newly started testpmd
    backend; the drivers' order alternates between rounds.
  * Same counter: the rate is the backend's own count for both drivers, the cumulative RX-packets / TX-packets of
    testpmd's periodic statistics, timestamped as each line arrives (testpmd runs line-buffered):
      tx        backend rxonly,  its RX-packets  (frames the driver sent)
      rx        backend txonly,  its TX-packets  (frames the driver took; the backend drops what does not fit the ring)
      loopback  backend macswap, its TX-packets  (frames sent back to the driver)
  * Same window: counted from --warmup seconds after the client process starts (well past .NET's JIT tiering and
    DPDK's EAL start-up) for --seconds, for both drivers alike; the client keeps running for a further second after
    the window, so its teardown never falls inside it.
  * Same features: DPDK's virtio-user is run once first to learn the feature set it negotiates with this backend (the
    backend logs it); VirtioNet is then asked for exactly that set (vnet bench --feature-mask). Every run's negotiated
    set is read from the backend's log and printed; the script fails if a VirtioNet run negotiated a different set.
  * Comparable buffer footprints: DPDK's client gets the smallest mbuf pool testpmd accepts (1280 mbufs of 2 KiB;
    its default would be 8192), against VirtioNet's 256 transmit and 256 receive buffers of 1.6 KiB.
  * Same-round ratios: each round's VirtioNet / DPDK ratio is taken from runs made back to back, and the table shows
    the median of those ratios (the machine swings more between rounds than between the drivers).
  * DPDK's own statistics (its client's final forward statistics) and VirtioNet's (vnet bench --json) are kept in
    the JSON beside the backend's counts, with the CPU model, the load average and the versions of everything.
CPU placement (2 cores): the backend forwards on core 0, the driver under test runs on core 1.
--baseline-vnet DLL runs a second vnet build (e.g. the previous commit's) in the same rounds, for before/after figures.
--interrupt and --adaptive run VirtioNet in those operation modes too (rx and loopback), in the same rounds; the table
then adds each one's rate and its same-round ratio to VirtioNet's poll mode.
Usage: bench/compare.py [--modes tx,rx,loopback] [--sizes 64,1514] [--seconds 8] [--warmup 3] [--rounds 3]
                        [--interrupt] [--adaptive] [--baseline-vnet DLL] [--json FILE]
"""
import argparse, json, os, platform, re, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VNET = os.path.join(ROOT, "artifacts", "vnet", "vnet.dll")
BACKEND_MODE = {"tx": "rxonly", "rx": "txonly", "loopback": "macswap"}
BACKEND_COUNTER = {"tx": "RX-packets", "rx": "TX-packets", "loopback": "TX-packets"}
DPDK_CLIENT_MODE = {"tx": "txonly", "rx": "rxonly", "loopback": "io"}
DPDK_MBUFS = 1280  # testpmd refuses 1024 or fewer
TAIL = 1.0  # seconds the client runs past the window
FEATURES = re.compile(r"negotiated Virtio features: (0x[0-9a-fA-F]+)")


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
    """Packets per second between the first counter line at or after start and the last at or before end."""
    points = []
    for t, line in lines:
        m = re.search(counter + r":\s+(\d+)", line)
        if m and start <= t <= end:
            points.append((t, int(m.group(1))))
    if len(points) < 2:
        return 0.0, points
    (t0, c0), (t1, c1) = points[0], points[-1]
    return (c1 - c0) / (t1 - t0), points


def negotiated(lines):
    found = [m.group(1) for _, line in lines for m in [FEATURES.search(line)] if m]
    return found[-1].lower() if found else None


def run_vnet(dll, sock, mode, size, run_seconds, mask, operation, pin):
    args = ["taskset", "-c", "1", "dotnet", dll, "bench", "--vhost-user", sock, "--mode", mode, "--size", str(size),
            "--seconds", str(run_seconds), "--json", "--mode", operation]
    if mask:
        args += ["--feature-mask", mask]
    if pin:
        args += ["--cpu", "1"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=run_seconds + 60)
    if out.returncode != 0:
        sys.exit(f"compare.py: vnet bench ({dll}) failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def run_dpdk(sock, mode, size, run_seconds, prefix):
    args = ["setpriv", "--pdeathsig", "KILL", "--", "stdbuf", "-oL", "dpdk-testpmd", "-l", "0,1", "--main-lcore", "0", "--no-huge",
            "-m", "512", "--no-pci", f"--file-prefix={prefix}", "--vdev", f"net_virtio_user0,path={sock},queues=1", "--",
            "--no-mlockall", f"--total-num-mbufs={DPDK_MBUFS}", f"--forward-mode={DPDK_CLIENT_MODE[mode]}", f"--txpkts={size}",
            "--stats-period", "1"]
    if mode == "loopback":
        args.append("--tx-first")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    out = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    time.sleep(run_seconds)
    stop(proc)
    reader.join(timeout=5)
    text = "".join(out)
    acc = text.split("Accumulated forward statistics")[-1] if "Accumulated forward statistics" in text else ""
    stats = {k: int(v) for k, v in re.findall(r"(RX-packets|TX-packets|RX-dropped|TX-dropped):\s+(\d+)", acc)}
    version = re.search(r"RTE Version: '([^']+)'", text)
    return {"forwardStatistics": stats, "seconds": run_seconds, "version": version.group(1) if version else None}


def measure(driver, mode, size, a, tag, mask, dll=None):
    workdir = tempfile.mkdtemp(prefix="vnet-bench-")
    sock = os.path.join(workdir, "vh.sock")
    backend, lines = start_backend(sock, mode, size, f"vnb{os.getpid()}{tag}")
    run_seconds = a.warmup + a.seconds + TAIL
    try:
        time.sleep(1)
        started = time.monotonic()
        if driver == "dpdk":
            client = run_dpdk(sock, mode, size, run_seconds, f"vnc{os.getpid()}{tag}")
        else:
            operation = {"virtionet-irq": "interrupt", "virtionet-adaptive": "adaptive"}.get(driver, "poll")
            client = run_vnet(dll or VNET, sock, mode, size, run_seconds, mask, operation, pin=dll is None)
        stopped = time.monotonic()
    finally:
        stop(backend)
        shutil.rmtree(workdir, ignore_errors=True)
    window = (started + a.warmup, started + a.warmup + a.seconds)
    pps, points = rate(lines, BACKEND_COUNTER[mode], *window)
    return {"driver": driver, "mode": mode, "size": size, "mpps": round(pps / 1e6, 4), "features": negotiated(lines),
            "clientSeconds": round(stopped - started, 2),
            "samples": [[round(t - started, 2), c] for t, c in points], "client": client}


def learn_dpdk_features(a):
    """DPDK's virtio-user against a fresh backend, once: the feature set it negotiates (read from the backend's log)."""
    probe = argparse.Namespace(**vars(a))
    probe.warmup, probe.seconds = 1.0, 1.0
    res = measure("dpdk", "tx", 64, probe, "probe", None)
    if not res["features"]:
        sys.exit("compare.py: the backend did not log the features DPDK negotiated (no 'negotiated Virtio features' line).")
    return res["features"]


def command_output(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None


def environment():
    cpu = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpuModel": cpu,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "loadAverageAtStart": os.getloadavg(),
        "dpdk": command_output(["dpkg-query", "-W", "-f=${Version}", "dpdk"]),
        "dotnet": command_output(["dotnet", "--version"]),
        "virtionetCommit": command_output(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="tx,rx,loopback")
    p.add_argument("--sizes", default="64,1514")
    p.add_argument("--seconds", type=float, default=8, help="the measuring window")
    p.add_argument("--warmup", type=float, default=3, help="seconds from the client's start to the window")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--interrupt", action="store_true",
                   help="also run VirtioNet in interrupt mode (rx and loopback only), in the same rounds")
    p.add_argument("--adaptive", action="store_true",
                   help="also run VirtioNet in adaptive mode (rx and loopback only), in the same rounds")
    p.add_argument("--baseline-vnet", help="another build's vnet.dll (with --feature-mask), run in the same rounds")
    a = p.parse_args()
    for tool in ("dpdk-testpmd", "setpriv", "taskset", "dotnet", "stdbuf"):
        if shutil.which(tool) is None:
            sys.exit(f"compare.py: {tool} is not on PATH (run scripts/install-deps)")
    if a.baseline_vnet and not os.path.exists(a.baseline_vnet):
        sys.exit(f"compare.py: no such file: {a.baseline_vnet}")
    subprocess.run([os.path.join(ROOT, "vnet"), "--help"], stdout=subprocess.DEVNULL, check=True)

    env = environment()
    mask = learn_dpdk_features(a)
    print(f"CPU: {env['cpuModel']} ({env['cpus']} CPUs), load average {env['loadAverageAtStart'][0]:.1f}; "
          f"DPDK {env['dpdk']}, .NET SDK {env['dotnet']}, VirtioNet {env['virtionetCommit']}", file=sys.stderr)
    print(f"DPDK virtio-user negotiated {mask}; VirtioNet is asked for the same set", file=sys.stderr)

    results = []
    n = 0
    for r in range(a.rounds):
        for mode in a.modes.split(","):
            for size in (int(s) for s in a.sizes.split(",")):
                order = ["virtionet", "dpdk"] if r % 2 == 0 else ["dpdk", "virtionet"]
                if a.baseline_vnet:
                    order.insert(1, "virtionet-base")
                if a.interrupt and mode != "tx":
                    order.insert(1, "virtionet-irq")
                if a.adaptive and mode != "tx":
                    order.insert(1, "virtionet-adaptive")
                for driver in order:
                    n += 1
                    res = measure(driver, mode, size, a, str(n), mask, a.baseline_vnet if driver == "virtionet-base" else None)
                    res["round"] = r + 1
                    results.append(res)
                    print(f"round {r + 1} {mode:8} {size:5} B  {driver:14}  {res['mpps']:.3f} Mpps  features {res['features']}",
                          file=sys.stderr, flush=True)

    mismatched = [x for x in results if x["features"] != mask]
    env["loadAverageAtEnd"] = os.getloadavg()

    def pick(driver, mode, size, rnd):
        return next((x["mpps"] for x in results if x["driver"] == driver and x["mode"] == mode and x["size"] == size and x["round"] == rnd), None)

    print(f"{'mode':9} {'size':>6}  {'VirtioNet Mpps':>15}  {'DPDK Mpps':>10}  {'ratio':>6}   "
          f"(ratio: median of {a.rounds} same-round ratios; rates: medians; backend-counted; features {mask} on both)")
    table = []
    for mode in a.modes.split(","):
        for size in (int(s) for s in a.sizes.split(",")):
            ratios, base_ratios = [], []
            for rnd in range(1, a.rounds + 1):
                v, d, b = pick("virtionet", mode, size, rnd), pick("dpdk", mode, size, rnd), pick("virtionet-base", mode, size, rnd)
                if v is not None and d:
                    ratios.append(v / d)
                if b is not None and d:
                    base_ratios.append(b / d)
            v = statistics.median([x["mpps"] for x in results if x["driver"] == "virtionet" and x["mode"] == mode and x["size"] == size])
            d = statistics.median([x["mpps"] for x in results if x["driver"] == "dpdk" and x["mode"] == mode and x["size"] == size])
            ratio = statistics.median(ratios) if ratios else float("nan")
            row = {"mode": mode, "size": size, "virtionet_mpps": v, "dpdk_mpps": d, "ratio": round(ratio, 3),
                   "round_ratios": [round(x, 3) for x in ratios]}
            extra = ""
            if base_ratios:
                row["baseline_ratio"] = round(statistics.median(base_ratios), 3)
                row["baseline_round_ratios"] = [round(x, 3) for x in base_ratios]
                extra += f"   baseline ratio {row['baseline_ratio']:.2f}"
            for driver, key, label in (("virtionet-irq", "interrupt", "interrupt mode"), ("virtionet-adaptive", "adaptive", "adaptive mode")):
                other = [x["mpps"] for x in results if x["driver"] == driver and x["mode"] == mode and x["size"] == size]
                if other:
                    row[f"virtionet_{key}_mpps"] = statistics.median(other)
                    to_poll = [pick(driver, mode, size, rnd) / pick("virtionet", mode, size, rnd) for rnd in range(1, a.rounds + 1)
                               if pick(driver, mode, size, rnd) is not None and pick("virtionet", mode, size, rnd)]
                    row[f"{key}_to_poll_round_ratios"] = [round(x, 3) for x in to_poll]
                    row[f"{key}_to_poll_ratio"] = round(statistics.median(to_poll), 3) if to_poll else None
                    extra += f"   {label} {row[f'virtionet_{key}_mpps']:.3f} ({key}/poll {' '.join(f'{x:.2f}' for x in to_poll)})"
            table.append(row)
            print(f"{mode:9} {size:6}  {v:15.3f}  {d:10.3f}  {ratio:6.2f}   rounds {' '.join(f'{x:.2f}' for x in ratios)}{extra}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"environment": env, "dpdkFeatures": mask, "warmupSeconds": a.warmup, "windowSeconds": a.seconds,
                       "dpdkMbufs": DPDK_MBUFS, "table": table, "runs": results}, f, indent=2)
    if mismatched:
        sys.exit("compare.py: negotiated features differ from DPDK's " + mask + ": " +
                 ", ".join(f"{x['driver']} {x['mode']} {x['size']} round {x['round']}: {x['features']}" for x in mismatched))


if __name__ == "__main__":
    main()
