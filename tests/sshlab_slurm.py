"""A small Slurm cluster inside an SSH lab (tests/sshlab.py): Debian's slurm-wlm and MUNGE
(tests/ensure-slurm.sh installs them), started on lab hosts that already run sshd and a Docker
engine each.

    cluster = SlurmCluster(lab, nodes=["lab1", "lab2"])   # slurmctld on lab1, slurmd on both
    job = cluster.submit(script_text)                     # sbatch --wait over SSH on lab1
    job.returncode, job.output, job.fields["JobState"]
    cluster.close()

(`lab.ssh(host, shlex.join(cluster.client("srun", ...)))` runs any client command.)

What runs where (each daemon in its host's network and mount namespaces, as the lab's sshd and
dockerd do, so a job's `docker` reaches that host's own engine through its private /run):

- munged on every node, each with its own socket (/run/munge in the host's private /run) and
  the one key the cluster shares (MUNGE's model: a credential made on one host is decoded on
  another with the same key).
- slurmctld on the first node, slurmd on every node (`slurmd -N NAME`), each in a UTS namespace
  of its own whose hostname is the node's name: slurmctld checks that it runs on SlurmctldHost,
  and a job's tasks see `hostname` = their node, as on real servers.
- One slurm.conf in the cluster's directory (never /etc/slurm): daemons get it with -f, client
  commands through SLURM_CONF (`client()` adds it; jobs inherit it, sbatch exports the
  submitter's environment). Nodes are named after their lab hosts with NodeAddr = their lab
  address; one partition `lab` holds them all. No cgroups (proctrack/linuxproc, task/none): the
  lab hosts share this machine's cgroup tree.

The cluster needs the lab's root privileges; it fails with the reason (LabError), never skips.
Facts: slurm.conf(5) and slurmd(8) of Slurm 22.05 (Debian 12's), munged(8) of MUNGE 0.5.15.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sshlab import Lab, LabError
from sshlab_system import alive, in_host, run

PARTITION = "lab"
_TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "sinfo")
DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Job:
    """A batch job that ended: its id, sbatch's exit code (--wait: the job's), what sbatch
    printed, the job's output file and scontrol's fields (JobState, ExitCode, NodeList...)."""

    id: str | None
    returncode: int
    sbatch_output: str
    output: str
    fields: dict


def _fresh_dir(lab_dir: Path) -> Path:
    """The cluster's own directory in the lab's: slurm, then slurm-2, ... for later clusters in
    the same lab (each test module starts one; the earlier ones' logs stay for reading)."""
    for number in range(1, 1000):
        path = lab_dir / ("slurm" if number == 1 else f"slurm-{number}")
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            continue
    raise LabError(f"Slurm in the lab: no free directory name in {lab_dir}")


class SlurmCluster:
    """slurmctld on nodes[0], slurmd on every node, munged on every node; close() stops them."""

    def __init__(self, lab: Lab, nodes: Sequence[str] = ("lab1", "lab2"), cpus: int = 1) -> None:
        if missing := [tool for tool in _TOOLS if shutil.which(tool) is None]:
            raise LabError(f"Slurm is not installed (missing {', '.join(missing)}): `make engine` runs "
                           "tests/ensure-slurm.sh, which installs slurm-wlm and munge")
        self.lab = lab
        self.nodes = list(nodes)
        self.controller = self.nodes[0]
        self.dir = _fresh_dir(Path(lab.dir))
        self.conf = self.dir / "slurm.conf"
        self._processes: dict[tuple[str, str], subprocess.Popen] = {}
        self._closed = False
        self._jobs = 0
        started = time.monotonic()
        try:
            self._build(cpus)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - started

    # --- building --------------------------------------------------------------------------

    def _build(self, cpus: int) -> None:
        (self.dir / "state").mkdir()
        (self.dir / "spool").mkdir()
        key = self.dir / "munge.key"
        run(["mungekey", "--create", f"--keyfile={key}"])  # one key, shared by every node
        key.chmod(0o400)
        self.conf.write_text(self._conf_text(cpus))
        for name in self.nodes:
            self._processes[name, "munged"] = self._start_munged(name, key)
        for name in self.nodes:
            self._wait(name, "munged", lambda n=name: self.lab.path(n, "/run/munge/munge.socket.2").exists(),
                       self.dir / f"munged-{name}.log", timeout=20)
        self._processes[self.controller, "slurmctld"] = self._spawn(
            self.controller, ["slurmctld", "-D", "-f", str(self.conf)], self.dir / "slurmctld.out")
        for name in self.nodes:
            self._processes[name, "slurmd"] = self._spawn(
                name, ["slurmd", "-D", "-N", name, "-f", str(self.conf)], self.dir / f"slurmd-{name}.out")
        self._wait(self.controller, "nodes idle", self._all_idle, self.dir / "slurmctld.log", timeout=60)

    def _conf_text(self, cpus: int) -> str:
        state = self.dir / "state"
        lines = [
            "# slurm.conf of an SSH lab's cluster: written by tests/sshlab_slurm.py",
            "ClusterName=envctl-lab",
            f"SlurmctldHost={self.controller}({self.lab.ip(self.controller)})",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"StateSaveLocation={state}",
            f"SlurmdSpoolDir={self.dir / 'spool'}/%n",  # one per node: the file system is shared
            "SlurmctldPidFile=/run/slurmctld.pid",  # /run is the host's own
            "SlurmdPidFile=/run/slurmd.pid",
            f"SlurmctldLogFile={self.dir / 'slurmctld.log'}",
            f"SlurmdLogFile={self.dir}/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc",  # no cgroups: the lab hosts share the machine's tree
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "MpiDefault=none",
            "ReturnToService=2",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
        ]
        # CPUs no more than this machine has, or slurmd's registration drains the node.
        cpus = max(1, min(cpus, os.cpu_count() or 1))
        lines += [f"NodeName={name} NodeAddr={self.lab.ip(name)} CPUs={cpus} State=UNKNOWN" for name in self.nodes]
        lines.append(f"PartitionName={PARTITION} Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP")
        return "\n".join(lines) + "\n"

    def _start_munged(self, name: str, key: Path) -> subprocess.Popen:
        run_dir = self.lab.path(name, "/run/munge")  # the host's private /run, seen from here
        run_dir.mkdir(mode=0o755, exist_ok=True)
        # An earlier cluster's socket would pass the wait for this munged before it listens.
        (run_dir / "munge.socket.2").unlink(missing_ok=True)
        argv = ["munged", "--foreground", "--force", f"--key-file={key}", "--socket=/run/munge/munge.socket.2",
                "--pid-file=/run/munge/munged.pid", f"--log-file={self.dir / f'munged-{name}.log'}",
                f"--seed-file={self.dir / f'munged-{name}.seed'}"]
        return self._spawn(name, argv, self.dir / f"munged-{name}.out", own_hostname=False)

    def _spawn(self, name: str, argv: list[str], log: Path, own_hostname: bool = True) -> subprocess.Popen:
        """A daemon inside lab host `name`, in its own session, with a plain environment; with
        own_hostname, in a UTS namespace whose hostname is the node's name."""
        host = self.lab.host(name)
        if own_hostname:
            argv = ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', name, *argv]
        with open(log, "ab") as out:
            return subprocess.Popen(in_host(argv, netns=host.netns, mnt=host.mnt), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={"PATH": DAEMON_PATH, "LANG": "C.UTF-8"}, cwd="/")

    def _wait(self, name: str, what: str, ready, log: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [f"{key[1]} of {key[0]}" for key, p in self._processes.items() if p.poll() is not None]
            if dead:
                raise LabError(f"Slurm in the lab: {', '.join(dead)} exited; logs in {self.dir}:\n{self._tails()}")
            time.sleep(0.2)
        raise LabError(f"Slurm in the lab: {what} on {name} not ready within {timeout:.0f}s; logs in {self.dir}:\n"
                       f"{self._tails()}")

    def _tails(self, lines: int = 12) -> str:
        parts = []
        for log in sorted(self.dir.glob("*.log")) + sorted(self.dir.glob("*.out")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            if text:
                parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def _all_idle(self) -> bool:
        result = self.lab.run_in(self.controller, "env", f"SLURM_CONF={self.conf}", "sinfo", "-h", "-N", "-o", "%N %t",
                                 timeout=30)
        states = dict(line.split() for line in result.stdout.splitlines() if len(line.split()) == 2)
        return result.returncode == 0 and all(states.get(name) == "idle" for name in self.nodes)

    # --- using it --------------------------------------------------------------------------

    def client(self, *argv: str) -> list[str]:
        """A Slurm client command for a lab host's shell (`lab.ssh(host, *cluster.client(...))`):
        `env SLURM_CONF=<the cluster's slurm.conf> ARGV...`."""
        return ["env", f"SLURM_CONF={self.conf}", *argv]

    def submit(self, script: str, *options: str, host: str | None = None, timeout: float = 600) -> Job:
        """`sbatch --wait OPTIONS SCRIPT` in a shell on `host` (the controller by default), as a
        user logged in there submits; returns when the job has ended. The script is written to
        the cluster's directory (shared by the lab hosts); its output goes to job-<id>.out there.

        DOCKER_HOST is left out of the submitting shell: the lab's sshd sets it to the path of
        that host's own engine socket in the lab directory, which every other lab host can also
        open (the file system is shared), and sbatch hands the submitter's environment to the
        job's tasks on every node. On real servers each node's /run/docker.sock is its own."""
        self._jobs += 1
        path = self.dir / f"job{self._jobs}.sh"
        path.write_text(script)
        output = self.dir / f"job{self._jobs}-%j.out"
        argv = ["env", "-u", "DOCKER_HOST", *self.client("sbatch", "--wait", f"--output={output}", *options, str(path))]
        result = self.lab.ssh(host or self.controller, shlex.join(argv), timeout=timeout)
        match = re.search(r"Submitted batch job (\d+)", result.stdout)
        job_id = match.group(1) if match else None
        text = Path(str(output).replace("%j", job_id)).read_text(errors="replace") if job_id else ""
        fields = self.job_fields(job_id) if job_id else {}
        return Job(job_id, result.returncode, result.stdout + result.stderr, text, fields)

    def job_fields(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o ID` as a dict (JobState, ExitCode, NodeList, ...)."""
        shown = self.lab.run_in(self.controller, *self.client("scontrol", "show", "job", "-o", job_id))
        return dict(field.split("=", 1) for field in shown.stdout.split() if "=" in field)

    def node_states(self) -> dict[str, str]:
        """sinfo's state of every node (idle, alloc, down, drain, ...)."""
        result = self.lab.run_in(self.controller, *self.client("sinfo", "-h", "-N", "-o", "%N %t"), timeout=30)
        return dict(line.split() for line in result.stdout.splitlines() if len(line.split()) == 2)

    # --- teardown --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every daemon (idempotent); what a job left in the lab goes with the lab."""
        if self._closed:
            return
        self._closed = True
        for process in self._processes.values():
            if alive(process.pid):
                process.terminate()
        for process in self._processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self._processes.clear()

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
