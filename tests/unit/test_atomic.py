"""Small state files written by several threads of one process at once (`up --hosts` runs a
thread per host, and they share the local cache's state)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from envctl.atomic import write_text_atomic


def test_concurrent_writers_in_one_process_never_trip_over_each_other(tmp_path):
    target = tmp_path / "state.json"

    def write(n: int) -> None:
        for i in range(50):
            write_text_atomic(target, json.dumps({"writer": n, "i": i}))

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(write, n) for n in range(8)]:
            future.result()  # a shared temporary name made some rename fail here
    assert json.loads(target.read_text())["i"] == 49  # whole, from one of the writers
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left
    assert oct(target.stat().st_mode & 0o777) == "0o644"
