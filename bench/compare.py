#!/usr/bin/env python3
"""Side-by-side benchmark: VirtioNet against DPDK's virtio-user, both driving the same dpdk-testpmd vhost-user backend.

For every round, mode and frame size, each driver gets a freshly started backend and runs for the same time; the
order of the two drivers alternates between rounds (the machine is noisy, so only figures of one run are compared).
The rate that counts is the backend's own count (testpmd's per-second Throughput lines), the same for both drivers:
  tx        backend rxonly,  its Rx-pps  (frames the driver sent)
  rx        backend txonly,  its Tx-pps  (frames the driver took; the backend cannot send faster than they are taken)
  loopback  backend macswap, its Tx-pps  (frames sent back to the driver)
CPU placement (2 cores): the backend forwards on core 0, the driver under test runs on core 1.
Usage: bench/compare.py [--modes tx,rx,loopback] [--sizes 64,1514] [--seconds 5] [--rounds 3] [--json FILE]
"""
import argparse, json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VNET = os.path.join(ROOT, "artifacts", "vnet", "vnet.dll")
BACKEND_MODE = {"tx": "rxonly", "rx": "txonly", "loopback": "macswap"}
BACKEND_COUNTER = {"tx": "Rx-pps", "rx": "Tx-pps", "loopback": "Tx-pps"}
DPDK_CLIENT_MODE = {"tx": "txonly", "rx": "rxonly", "loopback": "io"}


def start_backend(sock, mode, size, prefix):
    args = ["setpriv", "--pdeathsig", "KILL", "--", "dpdk-testpmd", "-l", "0,1", "--main-lcore", "1", "--no-huge", "-m", "512",
            "--no-pci", f"--file-prefix={prefix}", "--vdev", f"net_vhost0,iface={sock},queues=1", "--",
            "--no-mlockall", "--total-num-mbufs=8192", f"--forward-mode={BACKEND_MODE[mode]}", f"--txpkts={size}",
            "--stats-period", "1"]
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.time() + 30
    while not os.path.exists(sock):
        if proc.poll() is not None or time.time() > deadline:
            log.seek(0)
            sys.exit(f"compare.py: the backend did not start:\n{log.read()[-2000:]}")
        time.sleep(0.1)
    return proc, log


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def samples(text, counter):
    return [int(v) for v in re.findall(counter + r":\s+(\d+)", text)]


def run_virtionet(sock, mode, size, seconds):
    args = ["taskset", "-c", "1", "dotnet", VNET, "bench", "--vhost-user", sock, "--mode", mode, "--size", str(size),
            "--seconds", str(seconds), "--json"]
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
    time.sleep(seconds + 1.5)
    stop(proc)


def measure(driver, mode, size, seconds, tag):
    workdir = tempfile.mkdtemp(prefix="vnet-bench-")
    sock = os.path.join(workdir, "vh.sock")
    backend, log = start_backend(sock, mode, size, f"vnb{os.getpid()}{tag}")
    try:
        time.sleep(1)
        log.seek(0, os.SEEK_END)
        mark = log.tell()
        extra = {}
        if driver == "virtionet":
            extra = run_virtionet(sock, mode, size, seconds)
        else:
            run_dpdk(sock, mode, size, seconds, f"vnc{os.getpid()}{tag}")
        time.sleep(1.2)
    finally:
        stop(backend)
        shutil.rmtree(workdir, ignore_errors=True)
    log.seek(mark)
    values = samples(log.read(), BACKEND_COUNTER[mode])
    log.close()
    # Drop the first and last samples (start-up and tear-down), keep the steady state.
    steady = [v for v in values[1:-1] if v > 0] or values
    mpps = statistics.median(steady) / 1e6 if steady else 0.0
    return {"driver": driver, "mode": mode, "size": size, "mpps": round(mpps, 4), "samples": values, "client": extra}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="tx,rx,loopback")
    p.add_argument("--sizes", default="64,1514")
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
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
            table.append({"mode": mode, "size": size, "virtionet_mpps": v, "dpdk_mpps": d, "ratio": round(ratio, 3)})
            print(f"{mode:9} {size:6}  {v:15.3f}  {d:10.3f}  {ratio:6.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"table": table, "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
