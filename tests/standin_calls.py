"""The stand-ins' call log (tests/images/standin-common/standin/record.py), read from the host side of
the workspace mount and put in a form that can be compared with a golden file and with the
tutorials' commands:

- each call's environment is given as its difference from the container's own environment;
- a launcher's workers become one entry on the launcher (`workers`), after checking that their
  ranks are 0..N-1 and that they differ in nothing but their rank;
- values a manifest draws at random or from the clock (a master port from `shuf`, `$RANDOM`
  seeds, `date` in an output directory) are checked to be in range, then replaced by a label.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

LOG_NAME = "standin-calls.jsonl"
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "MS_NODE_ID")


@dataclass(frozen=True)
class Drawn:
    """A value drawn at run time: the argument after `flag` (or `flag=value`), an int in
    [low, high], shown as `label`."""

    flag: str
    low: int
    high: int
    label: str


DATE = re.compile(r"\d{8}-\d{6}")  # date +%Y%m%d-%H%M%S


class CallLog:
    def __init__(self, workspace: Path) -> None:
        self.path = workspace / LOG_NAME

    def _lines(self) -> list[str]:
        return self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []

    def mark(self) -> int:
        return len(self._lines())

    def since(self, mark: int) -> list[dict]:
        return [json.loads(line) for line in self._lines()[mark:]]


def _drawn_values(calls: list[dict], drawn: list[Drawn]) -> dict[str, str]:
    found = {}
    for spec in drawn:
        for call in calls:
            argv = call["argv"]
            for i, arg in enumerate(argv):
                value = argv[i + 1] if arg == spec.flag and i + 1 < len(argv) else (
                    arg.split("=", 1)[1] if arg.startswith(spec.flag + "=") else None)
                if value is None:
                    continue
                assert value.isdigit() and spec.low <= int(value) <= spec.high, \
                    f"{spec.flag} {value!r} is not a number in [{spec.low}, {spec.high}]"
                found[value] = spec.label
    return found


def _replace(text: str, values: dict[str, str], dates: bool) -> str:
    if text in values:
        return values[text]
    for value, label in values.items():
        text = text.replace(f"={value}", f"={label}")
    return DATE.sub("<date>", text) if dates else text


def _rankless(call: dict) -> tuple[int, dict]:
    env = dict(call["env"])
    names = [n for n in RANK_VARIABLES if n in env]
    assert names, f"a worker without a rank variable: {call['argv']}"
    rank = int(env[names[0]])
    for name in names:
        assert env[name] == str(rank), f"worker rank variables disagree: {call['env']}"
        env[name] = "<rank>"
    argv = [("--local_rank=<rank>" if a == f"--local_rank={rank}" else a) for a in call["argv"]]
    return rank, {**call, "argv": argv, "env": env, "seq": None}


def _entry(call: dict, container_env: dict[str, str]) -> dict:
    env = {k: v for k, v in call["env"].items() if container_env.get(k) != v}
    env.update({k: None for k in container_env if k not in call["env"]})
    entry = {"command": shlex.join(call["argv"]), "cwd": call["cwd"], "env": dict(sorted(env.items())),
             "paths": call["paths"]}
    for optional in ("ran", "requirements", "problems"):
        if optional in call:
            entry[optional] = call[optional]
    return entry


def normalize(calls: list[dict], container_env: dict[str, str], drawn: list[Drawn] = (), dates: bool = False) -> list[dict]:
    values = _drawn_values(calls, list(drawn))
    calls = [{**c, "argv": [_replace(a, values, dates) for a in c["argv"]],
              "env": {k: _replace(v, values, dates) for k, v in c["env"].items()},
              "paths": {_replace(k, values, dates): v for k, v in c["paths"].items()}} for c in calls]
    by_seq = {c["seq"]: c for c in calls}
    workers: dict[int, list[dict]] = {}
    for call in calls:
        if "worker_of" in call:
            assert call["worker_of"] in by_seq, f"a worker of call {call['worker_of']}, which is not in this run"
            workers.setdefault(call["worker_of"], []).append(call)
    out = []
    for call in calls:
        if "worker_of" in call:
            continue
        entry = _entry(call, container_env)
        if call["seq"] in workers:
            group = sorted((_rankless({k: v for k, v in w.items() if k != "worker_of"}) for w in workers[call["seq"]]),
                           key=lambda item: item[0])
            ranks = [rank for rank, _ in group]
            assert ranks == list(range(len(group))), f"worker ranks {ranks} of {entry['command']}"
            # Paths are left out: workers run one after another, so rank 0's outputs exist for the next.
            first = {k: v for k, v in group[0][1].items() if k != "paths"}
            for rank, shape in group[1:]:
                other = {k: v for k, v in shape.items() if k != "paths"}
                differ = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
                assert not differ, f"worker {rank} of {entry['command']} differs from worker 0 in {differ}"
            entry["workers"] = {"count": len(group), **_entry(group[0][1], container_env)}
        out.append(entry)
    return out
