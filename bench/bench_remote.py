"""Remote hosts over SSH, on the SSH lab of the tests (real sshd per host in its own network
namespace, its own Docker engine; tests/sshlab.py):

1. A large file (default 1 GiB, an image tarball's size) pushed to a host by `envctl fetch
   --host` (resumable, verified by sha256 on the host) against `scp` of the same file, on the
   lab link as it is and with a delay on the host's link (default 25 ms each way: a 50 ms round
   trip), alternating, same run. Prints throughputs and envctl/scp (aim >= 0.95 on the lab link,
   >= 1.0 far).
2. `envctl up` of a small environment (an image tarball, a 16 MiB artifact, a setup step) on eight
   fresh hosts at once against on one, on the lab link and with the delay on every host. Prints
   the times and their ratio (aim <= 1.3). The eight simulated servers (sshd, dockerd, the
   loads and container starts) run on this machine's cores too, so on a small machine the
   ratio measures the servers' work competing for them as much as envctl: beside it, the same
   work done by hand (scp of both files, then one ssh command that loads, runs and execs) on
   one host and on eight at once, and that ratio.
3. Per command, on one host with the delay: `up` fresh, `up` of the environment already up
   (the first after it: the full path, which records the no-op), `up` again (answered from that
   record through the live master: envctl/quick_up_remote.py), `status --host`, `exec --host`
   of a trivial entrypoint (the first: the full path, which records its resolution) and `exec`
   again (started from that record: envctl/quick_exec.py), and `exec` once more after `down` and
   `up` made the container again from the same manifest (the record holds), each with its
   seconds and the round trips it made: ssh commands envctl started (ENVCTL_SSH_TRACE,
   envctl/remote/ssh.py; a new connection with its handshake counted apart, and the sessions
   `up` opened ahead for its pushes, envctl/remote/standby.py, whose channels' round trips
   nobody waits for) and requests the
   host's engine served (its own debug log, so the docker CLI's requests of `exec` count too; a
   `docker load` run on the host is one of them but no round trip). Aims at a 50 ms round trip:
   up again <= 1 s, status and exec <= 0.5 s, up fresh <= 2.5 s. This machine's records of `up`
   are kept from one round to the next, as a user's are when an environment is brought up again:
   from the second round on, `up fresh` first checks the record the round before left (the
   container is another one: the full path runs), which its counts include; the first `exec`'s
   records are removed before it, so that it is the full path's. Beside `up` fresh, the same work
   done by hand on that host and link (as in 2.), and their ratio.

    .venv/bin/python bench/bench_remote.py [size_mib] [delay_ms] [runs] [--only transfer|hosts|commands]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ENVCTL, REPO, bench_env, busybox_rootfs, median, run, timed

sys.path.insert(0, str(REPO / "tests"))
from sshlab import Lab  # noqa: E402  (the tests' lab)

IMAGE = "envctl-bench/remote:1"
DATA = "/root/envctl-bench"


HOSTS = [f"lab{i}" for i in range(1, 9)]  # the many-hosts part's; the others use lab1


def main(size_mib: int, delay_ms: int, runs: int, only: str | None = None) -> None:
    base = Path(tempfile.mkdtemp(prefix="envctl-bench-", dir="/var/tmp"))
    with Lab(hosts=len(HOSTS)) as lab:
        env = _environ(base, lab)
        try:
            if only in (None, "transfer"):
                transfer(lab, base, env, size_mib, delay_ms, runs)
            if only in (None, "hosts", "commands"):
                manifest = small_environment(base)
                if only in (None, "commands"):
                    per_command(lab, base, env, manifest, runs, delay_ms)
                if only in (None, "hosts"):
                    many_hosts(lab, env, manifest, runs, delay_ms)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _environ(base: Path, lab: Lab) -> dict:
    env = bench_env(base)
    inventory = base / "inventory.yaml"
    inventory.write_text(f"defaults: {{data_dir: {DATA}, fetch: push}}\nhosts: {{\"lab[1-{len(HOSTS)}]\": {{}}}}\n")
    control = Path(tempfile.mkdtemp(prefix="ecb-"))
    env.update(ENVCTL_SSH_CONFIG=str(lab.ssh_config), ENVCTL_INVENTORY=str(inventory), ENVCTL_SSH_CONTROL_DIR=str(control))
    return env


def _fresh(lab: Lab, env: dict, hosts: list[str]) -> None:
    """Each host as on first contact: no envctl data, no image, no master connection."""
    for socket in Path(env["ENVCTL_SSH_CONTROL_DIR"]).iterdir():
        if not socket.name.startswith("docker-"):
            subprocess.run(["ssh", "-S", str(socket), "-O", "exit", "x"], capture_output=True, timeout=30)
    for host in hosts:
        lab.run_in(host, "rm", "-rf", DATA, "/root/scp.bin", "/root/image.tar", "/root/weights.bin")
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
        aim = 1.0 if delay else 0.95
        print(f"{size_mib} MiB, {label}: scp {mb / median(theirs):.0f} MB/s ({median(theirs):.2f} s), "
              f"envctl {mb / median(ours):.0f} MB/s ({median(ours):.2f} s, incl. start-up and the sha256 check on "
              f"the host) -> envctl/scp throughput {median(theirs) / median(ours):.2f} (aim >= {aim})")


def small_environment(base: Path) -> Path:
    """The manifest of a small environment: an image tarball, a 16 MiB artifact, a setup step,
    and a trivial entrypoint."""
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
entrypoints:
  hello: {{run: "true"}}
""")
    return manifest


def many_hosts(lab: Lab, env: dict, manifest: Path, runs: int, delay_ms: int) -> None:
    """envctl's ratio, and beside it the same work done by hand on the same hosts (by_hand), so
    that what the simulated servers' contention for this machine's cores costs shows apart."""
    hosts = HOSTS
    base = manifest.parent.parent
    for label, delay in (("lab link", 0), (f"{2 * delay_ms} ms round trip to each", delay_ms)):
        for host in hosts:
            lab.set_delay(host, delay) if delay else lab.clear_delay(host)
        one, many, cpu_one, cpu_many, hand_one, hand_many = [], [], [], [], [], []
        for _ in range(runs):
            _fresh(lab, env, hosts)
            one.append(_timed_cpu(ENVCTL + ["up", str(manifest), "--host", "lab1"], env, cpu_one))
            _fresh(lab, env, hosts)
            many.append(_timed_cpu(ENVCTL + ["up", str(manifest), "--hosts", ",".join(hosts)], env, cpu_many))
            _fresh(lab, env, hosts)
            hand_one.append(by_hand(lab, base, ["lab1"]))
            _fresh(lab, env, hosts)
            hand_many.append(by_hand(lab, base, hosts))
        _fresh(lab, env, hosts)
        print(f"up, {label}: on 1 fresh host {median(one):.2f} s, on {len(hosts)} at once {median(many):.2f} s "
              f"-> ratio {median(many) / median(one):.2f} (aim <= 1.3); envctl's own CPU (with the ssh "
              f"commands it waits for) {median(cpu_one):.2f} s for 1 host, {median(cpu_many):.2f} s for {len(hosts)}; "
              f"by hand (scp, then ssh: docker load, run, exec) {median(hand_one):.2f} s and "
              f"{median(hand_many):.2f} s -> ratio {median(hand_many) / median(hand_one):.2f}")
    lab.clear_delay()


def by_hand(lab: Lab, base: Path, hosts: list[str]) -> float:
    """Seconds to do on each host at once what `up` of the small environment does, as a user
    would by hand: scp the image tarball and the weights (one connection), then one ssh command
    that loads the image, runs the container with the weights mounted and runs the setup step
    in it (one more connection)."""
    failures: list[str] = []

    def one(host: str) -> None:
        scp = ["scp", "-q", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", str(base / "image.tar"),
               str(base / "weights.bin"), f"{host}:/root/"]
        done = subprocess.run(scp, capture_output=True, text=True)
        script = (f"mkdir -p {DATA} && docker load -q -i /root/image.tar >/dev/null && "
                  f"docker run -d --name envctl-bench-remote -v /root/weights.bin:/models/weights.bin {IMAGE} "
                  "sleep 3600 >/dev/null && docker exec envctl-bench-remote sh -c 'wc -c /models/weights.bin > /size.txt'")
        if done.returncode == 0:
            done = subprocess.run(lab.ssh_argv(host, script), capture_output=True, text=True)
        if done.returncode != 0:
            failures.append(f"{host}: {done.stderr.strip()}")

    threads = [threading.Thread(target=one, args=(host,)) for host in hosts]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if failures:
        raise SystemExit("by hand failed:\n" + "\n".join(failures))
    return seconds


def per_command(lab: Lab, base: Path, env: dict, manifest: Path, runs: int, delay_ms: int) -> None:
    """Seconds and round trips of each command on lab1 at the delay (see the module's docstring)."""
    traced = {**env, "ENVCTL_SSH_TRACE": str(base / "ssh-trace")}
    engine_log = _engine_debug(lab, "lab1")
    up = ENVCTL + ["up", str(manifest), "--host", "lab1"]
    hello = ENVCTL + ["exec", "hello", "--host", "lab1"]
    commands = {"up fresh": up, "up already up": up, "up again": up, "status --host": ENVCTL + ["status", "--host", "lab1"],
                "exec --host": hello, "exec again": hello, "exec made again": hello}
    # What each command is preceded by, untimed: the first exec is the full path (no record of
    # it: _forget_execs); the last follows `down` and `up` (a container made again from the
    # same manifest), the record of the one before kept.
    before = {"exec --host": lambda: _forget_execs(env),
              "exec made again": lambda: [run(argv, env=env) for argv in
                                          (ENVCTL + ["down", "bench-remote", "--host", "lab1"], up)]}
    aims = {"up fresh": 2.5, "up already up": 1.0, "up again": 1.0, "status --host": 0.5, "exec --host": 0.5,
            "exec again": 0.5, "exec made again": 0.5}
    lab.set_delay("lab1", delay_ms)
    seconds: dict[str, list[float]] = collections.defaultdict(list)
    trips: dict[str, list[collections.Counter]] = collections.defaultdict(list)
    hand: list[float] = []
    try:
        ping = lab.ssh_argv("lab1", "true", options=("ControlMaster=no",))
        handshake = median([timed(ping) for _ in range(3)])
        for _ in range(runs):
            _fresh(lab, env, ["lab1"])
            for label, argv in commands.items():  # in this order: each finds what the one before left
                before.get(label, lambda: None)()
                seconds[label].append(_traced(argv, traced, engine_log, trips[label]))
            _fresh(lab, env, ["lab1"])
            hand.append(by_hand(lab, base, ["lab1"]))  # the fresh up's work as a user does it, same link
    finally:
        lab.clear_delay()
        _fresh(lab, env, ["lab1"])
    print(f"per command on one host, {2 * delay_ms} ms round trip (`ssh true` with its own connection: "
          f"{handshake:.2f} s); medians of {runs}:")
    for label in commands:
        counts = {kind: median([c[kind] for c in trips[label]])
                  for kind in ("session", "standby", "connection", "api", "engine")}
        print(f"  {label:<16} {median(seconds[label]):5.2f} s (aim <= {aims[label]}): ssh commands "
              f"{counts['session']:.0f} (+{counts['connection']:.0f} separate connections; "
              f"{counts['standby']:.0f} sessions opened ahead for them), engine requests "
              f"{counts['engine']:.0f} ({counts['api']:.0f} of them envctl's own, through docker-py or its own requests)")
    print(f"  by hand          {median(hand):5.2f} s: the fresh up's work as a user does it on the same link (scp, then ssh: "
          f"docker load, run, exec; two connections) -> up fresh / by hand {median(seconds['up fresh']) / median(hand):.2f}")


def _forget_execs(env: dict) -> None:
    """Remove this machine's records of `exec --host` runs (envctl/quick_exec_record.py: the
    quick records holding a "listing"), so that the next exec takes the full path."""
    for record in (Path(env["ENVCTL_CACHE"]) / "state" / "quick-up").glob("*.json"):
        if "listing" in json.loads(record.read_text()):
            record.unlink()


def _traced(argv: list[str], env: dict, engine_log: Path, counts: list) -> float:
    """Wall seconds of a command; appends a Counter of the ssh processes it started by kind
    (ENVCTL_SSH_TRACE), of its docker-py requests ("api") and of the requests the engine's
    debug log shows ("engine")."""
    trace = Path(env["ENVCTL_SSH_TRACE"])
    trace.write_text("")
    logged = engine_log.stat().st_size
    seconds = timed(argv, env=env)
    time.sleep(0.2)  # the engine's log is written after its answer
    counted = collections.Counter(line.split(" ", 1)[0] for line in trace.read_text().splitlines())
    with open(engine_log, "rb") as log:
        log.seek(logged)
        counted["engine"] = len(re.findall(rb'msg="Calling [A-Z]+ ', log.read()))
    counts.append(counted)
    return seconds


def _engine_debug(lab: Lab, host: str) -> Path:
    """Turn on the debug log of the host's engine (a reload: dockerd re-reads `debug` on
    SIGHUP), where it logs each API request as `Calling METHOD PATH`; returns the log."""
    plan = lab.host(host)
    config = plan.path / "daemon.json"
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "debug": True}) + "\n")
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[:1] == [b"dockerd"] and str(config).encode() in cmdline:
            os.kill(int(entry.name), signal.SIGHUP)
            break
    else:
        raise RuntimeError(f"no dockerd of {host} found")
    time.sleep(1)
    return plan.path / "dockerd.log"


def _timed_cpu(argv: list[str], env: dict, cpu: list[float]) -> float:
    """Wall seconds of a command; its CPU seconds (user + system, its waited children included)
    are appended to `cpu`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = timed(argv, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return seconds


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Pushes to SSH lab hosts against scp; up on eight hosts against "
                                                 "one; seconds and round trips per command.")
    parser.add_argument("numbers", nargs="*", type=int, metavar="size_mib delay_ms runs",
                        help="the file's size in MiB (1024), the delay each way in ms (25), runs per case (2)")
    parser.add_argument("--only", choices=("transfer", "hosts", "commands"),
                        help="run only the transfer, the many-hosts or the per-command part")
    options = parser.parse_args()
    if len(options.numbers) > 3:
        parser.error("at most three numbers: size_mib delay_ms runs")
    size, delay, repeats = (options.numbers + [1024, 25, 2][len(options.numbers):])[:3]
    started = time.monotonic()
    main(size, delay, repeats, options.only)
    print(f"({time.monotonic() - started:.0f} s in all)")
