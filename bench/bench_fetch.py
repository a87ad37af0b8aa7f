"""Fetching seven chatglm3-6b-sized shards from a loopback nginx: envctl against `curl`
fetching the same files one after another, measured in the same run.

    .venv/bin/python bench/bench_fetch.py [shard_mib] [capped_shard_mib] [cap_mib_per_s]

Needs nginx (Debian: apt-get install nginx-light). Prints: the uncapped throughput ratio (aim
>= 0.9), the ratio when every connection is capped with nginx's limit_rate, as on a slow link
(aim >= 1.5, thanks to parallel streams), the second fetch with a warm cache (aim: zero bytes
over the network, well under a second) and a resume after a kill at ~50% (aim <= 55%).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENVCTL = [sys.executable, "-m", "envctl"]
MiB = 1 << 20


class Nginx:
    """nginx serving `root` on a loopback port, optionally capped per connection."""

    def __init__(self, root: Path, base: Path, cap_mib: int | None):
        self.root, self.base, self.cap = root, base, cap_mib
        self.port = 18000 + os.getpid() % 1000

    def __enter__(self):
        conf = self.base / "nginx.conf"
        limit = f"limit_rate {self.cap}m;" if self.cap else ""
        conf.write_text(f"""
user root; pid {self.base}/nginx.pid; error_log {self.base}/error.log; worker_processes 2;
events {{ worker_connections 256; }}
http {{ access_log {self.base}/access.log; sendfile on; tcp_nopush on;
  server {{ listen 127.0.0.1:{self.port}; root {self.root}; {limit} }} }}
""")
        self.process = subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait()

    def bytes_sent(self) -> int:
        # The default log format ends with: status bytes_sent "referer" "agent".
        log = (self.base / "access.log").read_text() if (self.base / "access.log").exists() else ""
        return sum(int(m.group(1)) for m in re.finditer(r'" \d{3} (\d+) "', log))

    def reset(self) -> None:
        (self.base / "access.log").unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)  # reopen the log
        time.sleep(0.2)


def make_shards(root: Path, count: int, size: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    block = os.urandom(MiB)
    names = [f"pytorch_model-0000{i}-of-0000{count}.bin" for i in range(1, count + 1)]
    for name in names:
        with open(root / name, "wb") as handle:
            for _ in range(size // MiB):
                handle.write(block)
    return names


def manifest(base: Path, port: int, names: list[str]) -> Path:
    path = base / "m" / "manifest.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"  shard{i}: {{source: 'http://127.0.0.1:{port}/{n}'}}\n" for i, n in enumerate(names))
    path.write_text("name: bench-fetch\ndescription: x\ndevice: {kind: cpu}\nimage: {ref: x}\nartifacts:\n" + body)
    return path


def envctl_fetch(base: Path, manifest_file: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env.update(ENVCTL_CACHE=str(base / "cache"), HOME=str(base / "home"))
    return subprocess.Popen(ENVCTL + ["fetch", str(manifest_file)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def timed_envctl(base: Path, manifest_file: Path) -> float:
    start = time.perf_counter()
    process = envctl_fetch(base, manifest_file)
    _, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(err.decode())
    return time.perf_counter() - start


def timed_curl(port: int, names: list[str], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name in names:
        subprocess.run(["curl", "-sSf", "-o", str(out / name), f"http://127.0.0.1:{port}/{name}"], check=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    return elapsed


def scenario(base: Path, shard_mib: int, cap: int | None) -> dict:
    root = base / "www"
    names = make_shards(root, 7, shard_mib * MiB)
    total = 7 * shard_mib * MiB
    with Nginx(root, base, cap) as nginx:
        m = manifest(base, nginx.port, names)
        curl = timed_curl(nginx.port, names, base / "curl")
        ours = timed_envctl(base, m)
        nginx.reset()
        warm = timed_envctl(base, m)
        warm_bytes = nginx.bytes_sent()
    shutil.rmtree(base / "cache")
    shutil.rmtree(root)
    return {"curl": curl, "ours": ours, "total": total, "warm": warm, "warm_bytes": warm_bytes}


def resume(base: Path, shard_mib: int, cap: int) -> float:
    root = base / "www"
    names = make_shards(root, 7, shard_mib * MiB)
    total = 7 * shard_mib * MiB
    with Nginx(root, base, cap) as nginx:
        m = manifest(base, nginx.port, names)
        process = envctl_fetch(base, m)
        while _on_disk(base) < total // 2:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        nginx.reset()
        timed_envctl(base, m)
        again = nginx.bytes_sent()
    shutil.rmtree(base / "cache")
    shutil.rmtree(root)
    return again / total


def _on_disk(base: Path) -> int:
    """Bytes fetched so far: finished blobs, plus what each partial download's record says it
    has (a segmented download's file is allocated at full size from the start)."""
    import json

    blobs = base / "cache" / "blobs" / "sha256"
    total = sum(p.stat().st_size for p in blobs.iterdir()) if blobs.exists() else 0
    for part in (base / "cache" / "partial").glob("*.part"):
        try:
            meta = json.loads(part.with_suffix(".json").read_text())
        except (OSError, ValueError):
            continue
        if meta.get("mode") == "parallel":
            total += len(meta.get("segments", [])) * (16 << 20) + sum((meta.get("progress") or {}).values())
        else:
            total += part.stat().st_size
    return total


def main() -> None:
    shard = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    capped = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    cap = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    if shutil.which("nginx") is None or shutil.which("curl") is None:
        raise SystemExit("needs nginx and curl (Debian: apt-get install nginx-light curl)")
    base = Path(tempfile.mkdtemp(prefix="envctl-bench-", dir="/var/tmp"))
    try:
        r = scenario(base, shard, None)
        mib = r["total"] / MiB
        print(f"7 x {shard} MiB, loopback nginx, no cap: curl {mib / r['curl']:7.1f} MiB/s, envctl {mib / r['ours']:7.1f} MiB/s"
              f" → throughput ratio {r['curl'] / r['ours']:.2f} (aim >= 0.9)")
        print(f"second fetch, warm cache: {r['warm'] * 1000:.0f} ms, {r['warm_bytes']} bytes over the network")
        r = scenario(base, capped, cap)
        print(f"7 x {capped} MiB, {cap} MiB/s per connection: curl {r['curl']:6.1f} s, envctl {r['ours']:6.1f} s"
              f" → throughput ratio {r['curl'] / r['ours']:.2f} (aim >= 1.5)")
        print(f"resume after a kill at ~50%: the second run transferred {resume(base, capped, cap):.0%} of the bytes (aim <= 55%)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
