"""The names of entrypoints' logs (envctl.execute.log_path) and the glob `envctl logs ENTRYPOINT`
finds them with (log_pattern): runs started in the same second never share a log, and one
entrypoint's glob never takes another's log."""

import fnmatch
import subprocess
import time
from pathlib import Path

from envctl.execute import log_path, log_pattern

SECOND = time.struct_time((2026, 11, 30, 12, 3, 11, 0, 334, 0))


def test_runs_of_one_entrypoint_in_the_same_second_get_logs_of_their_own(monkeypatch):
    monkeypatch.setattr(time, "gmtime", lambda *_: SECOND)
    names = [log_path(Path("/ws"), "eval") for _ in range(3)]
    # Four hex digits each: three the same would happen once in 4 billion.
    assert len(set(names)) > 1
    for name in names:
        assert name.parent == Path("/ws/logs")
        assert name.name.startswith("eval-20261130T120311Z-") and name.suffix == ".log"


def test_an_entrypoints_glob_takes_its_own_logs_and_no_other_entrypoints():
    names = {
        "train": ["train-20261130T120311Z-3f2a.log",  # this envctl's
                  "train-20261130T120311Z.log",  # an earlier envctl's: named to the second
                  "train-20261130T120311Z-2.log",  # a detached run's beside another (cli_serve.fresh_log)
                  "train-20261130-120311-k3j9-node1.log"],  # a node's of a run across nodes (multinode/node_logs.py)
        "train-eval": ["train-eval-20261130T120311Z-91bc.log"],
        "train-2": ["train-2-20261130T120311Z-0a0a.log", "train-2-20261130-120311-aaaa-node0.log"],
    }
    every = [name for logs in names.values() for name in logs]
    for entrypoint, own in names.items():
        assert [n for n in every if fnmatch.fnmatchcase(n, log_pattern(entrypoint))] == own, entrypoint
    assert [n for n in every if fnmatch.fnmatchcase(n, log_pattern(None))] == every


def test_the_glob_is_the_same_to_the_hosts_sh(tmp_path):
    """An SSH host expands it in `ls -1t -- $2` (envctl/hosts/ssh.py _NEWEST): sh's globbing."""
    for name in ("train-20261130T120311Z-3f2a.log", "train-eval-20261130T120311Z-91bc.log",
                 "train-20261130-120311-k3j9-node1.log"):
        (tmp_path / name).write_text("")
    listed = subprocess.run(["sh", "-c", 'cd "$1" && ls -1 -- $2', "sh", str(tmp_path), log_pattern("train")],
                            capture_output=True, text=True, check=True).stdout
    assert sorted(listed.split()) == ["train-20261130-120311-k3j9-node1.log", "train-20261130T120311Z-3f2a.log"]
