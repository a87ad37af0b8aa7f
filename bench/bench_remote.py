"""Remote hosts over SSH, on the SSH lab of the tests (real sshd per host in its own network
namespace, its own Docker engine; tests/sshlab.py):

1. A large file (default 1 GiB, an image tarball's size) pushed to a host by `envctl fetch
   --host` (resumable, verified by sha256 on the host) against `scp` of the same file, on the
   lab link as it is and with a delay on the host's link (default 25 ms each way: a 50 ms round
   trip), alternating, same run. Prints throughputs and envctl/scp (aim >= 0.9).
2. `envctl up` of a small environment (an image tarball, a 16 MiB artifact, a setup step) on four
   fresh hosts at once against on one, on the lab link and with the delay on every host. Prints
   the times and their ratio (aim <= 1.3). The four simulated servers (sshd, dockerd, the
   loads and container starts) run on this machine's cores too, so on a small machine the
   ratio measures the servers' work competing for them as much as envctl.

    .venv/bin/python bench/bench_remote.py [size_mib] [delay_ms] [runs] [--only transfer|hosts]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENVCTL, REPO, bench_env, busybox_rootfs, median, run, timed

sys.path.insert(0, str(REPO / "tests"))
from sshlab import Lab  # noqa: E402  (the tests' lab)

IMAGE = "envctl-bench/remote:1"
DATA = "/root/envctl-bench"


def main(size_mib: int, delay_ms: int, runs: int, only: str | None = None) -> None:
    base = Path(tempfile.mkdtemp(prefix="envctl-bench-", dir="/var/tmp"))
    with Lab(hosts=4) as lab:
        env = _environ(base, lab)
        try:
            if only in (None, "transfer"):
                transfer(lab, base, env, size_mib, delay_ms, runs)
            if only in (None, "hosts"):
                many_hosts(lab, base, env, runs, delay_ms)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _environ(base: Path, lab: Lab) -> dict:
    env = bench_env(base)
    inventory = base / "inventory.yaml"
    inventory.write_text(f"defaults: {{data_dir: {DATA}, fetch: push}}\nhosts: {{\"lab[1-4]\": {{}}}}\n")
    control = Path(tempfile.mkdtemp(prefix="ecb-"))
    env.update(ENVCTL_SSH_CONFIG=str(lab.ssh_config), ENVCTL_INVENTORY=str(inventory), ENVCTL_SSH_CONTROL_DIR=str(control))
    return env


def _fresh(lab: Lab, env: dict, hosts: list[str]) -> None:
    """Each host as on first contact: no envctl data, no image, no master connection."""
    for socket in Path(env["ENVCTL_SSH_CONTROL_DIR"]).iterdir():
        if not socket.name.startswith("docker-"):
            subprocess.run(["ssh", "-S", str(socket), "-O", "exit", "x"], capture_output=True, timeout=30)
    for host in hosts:
        lab.run_in(host, "rm", "-rf", DATA, "/root/scp.bin")
        lab.docker(host, "rm", "-f", "envctl-bench-remote")
        lab.docker(host, "rmi", "-f", IMAGE)


def transfer(lab: Lab, base: Path, env: dict, size_mib: int, delay_ms: int, runs: int) -> None:
    payload = base / "payload.bin"
    with open(payload, "wb") as out:
        for _ in range(size_mib):
            out.write(os.urandom(1 << 20))
    manifest = base / "transfer" / "manifest.yaml"
    manifest.parent.mkdir()
    manifest.write_text(f"""\
name: bench-transfer
description: one {size_mib} MiB file
device: {{kind: cpu}}
image: {{ref: {IMAGE}}}
artifacts:
  payload: {{source: {payload}, target: /data/payload.bin}}
""")
    run(ENVCTL + ["fetch", str(manifest)], env=env)  # into the local cache first: we measure the push
    scp = ["scp", "-q", "-F", str(lab.ssh_config), str(payload), "lab1:/root/scp.bin"]
    push = ENVCTL + ["fetch", str(manifest), "--host", "lab1"]
    for label, delay in (("lab link", 0), (f"{2 * delay_ms} ms round trip", delay_ms)):
        if delay:
            lab.set_delay("lab1", delay)
        ours, theirs = [], []
        for _ in range(runs):
            _fresh(lab, env, ["lab1"])
            theirs.append(timed(scp))
            _fresh(lab, env, ["lab1"])
            ours.append(timed(push, env=env))
        lab.clear_delay("lab1")
        mb = size_mib * 1.048576
        print(f"{size_mib} MiB, {label}: scp {mb / median(theirs):.0f} MB/s ({median(theirs):.2f} s), "
              f"envctl {mb / median(ours):.0f} MB/s ({median(ours):.2f} s, incl. start-up and the sha256 check on "
              f"the host) -> envctl/scp throughput {median(theirs) / median(ours):.2f} (aim >= 0.9)")


def many_hosts(lab: Lab, base: Path, env: dict, runs: int, delay_ms: int) -> None:
    rootfs = busybox_rootfs()
    run(["docker", "import", str(rootfs), IMAGE])
    tarball = base / "image.tar"
    run(["docker", "save", "-o", str(tarball), IMAGE])
    run(["docker", "rmi", "-f", IMAGE])
    weights = base / "weights.bin"
    weights.write_bytes(os.urandom(16 << 20))
    manifest = base / "remote" / "manifest.yaml"
    manifest.parent.mkdir()
    manifest.write_text(f"""\
name: bench-remote
description: a small environment
device: {{kind: cpu}}
image: {{ref: {IMAGE}, tarball: {{source: {tarball}}}}}
artifacts:
  weights: {{source: {weights}, target: /models/weights.bin}}
setup:
  - name: look at the weights
    run: wc -c /models/weights.bin > /envctl/size.txt
""")
    hosts = ["lab1", "lab2", "lab3", "lab4"]
    for label, delay in (("lab link", 0), (f"{2 * delay_ms} ms round trip to each", delay_ms)):
        for host in hosts:
            lab.set_delay(host, delay) if delay else lab.clear_delay(host)
        one, four, cpu_one, cpu_four = [], [], [], []
        for _ in range(runs):
            _fresh(lab, env, hosts)
            one.append(_timed_cpu(ENVCTL + ["up", str(manifest), "--host", "lab1"], env, cpu_one))
            _fresh(lab, env, hosts)
            four.append(_timed_cpu(ENVCTL + ["up", str(manifest), "--hosts", ",".join(hosts)], env, cpu_four))
        _fresh(lab, env, hosts)
        print(f"up, {label}: on 1 fresh host {median(one):.2f} s, on 4 at once {median(four):.2f} s "
              f"-> ratio {median(four) / median(one):.2f} (aim <= 1.3); envctl's own CPU (with the ssh "
              f"commands it waits for) {median(cpu_one):.2f} s for 1 host, {median(cpu_four):.2f} s for 4")
    lab.clear_delay()


def _timed_cpu(argv: list[str], env: dict, cpu: list[float]) -> float:
    """Wall seconds of a command; its CPU seconds (user + system, its waited children included)
    are appended to `cpu`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = timed(argv, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return seconds


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Pushes to SSH lab hosts against scp; up on four hosts against one.")
    parser.add_argument("numbers", nargs="*", type=int, metavar="size_mib delay_ms runs",
                        help="the file's size in MiB (1024), the delay each way in ms (25), runs per case (2)")
    parser.add_argument("--only", choices=("transfer", "hosts"), help="run only the transfer or the many-hosts part")
    options = parser.parse_args()
    if len(options.numbers) > 3:
        parser.error("at most three numbers: size_mib delay_ms runs")
    size, delay, repeats = (options.numbers + [1024, 25, 2][len(options.numbers):])[:3]
    started = time.monotonic()
    main(size, delay, repeats, options.only)
    print(f"({time.monotonic() - started:.0f} s in all)")
