"""Faults a test can inject into a running SSH lab (a mixin of sshlab.Lab): cut sessions, a
stopped or partitioned host, added latency; and reset(), which undoes them all.

Everything acts where a real failure would: on the host's sshd processes, or on the host's wire
in the lab's switch namespace (see tests/sshlab_build.py), never on the machine's firewall.
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import sshlab_build as build
from sshlab_build import HostPlan
from sshlab_system import (
    LabError,
    exe_name,
    in_host,
    kill,
    netns_path,
    ns_id,
    pids_in_namespaces,
    run,
    stop_process,
)

DELAY_SCRIPT = Path(__file__).with_name("sshlab_delay.py")


class Faults:
    """Needs from the class it is mixed into: _plan, _processes, _delays, _partitioned,
    _stopped, _asking, _set_docker_host, host(), _wait_sshd(), restore_known_hosts()."""

    def _detect_delay_mechanism(self) -> str:
        """netem where the kernel has it; else the NFQUEUE daemon (see tests/sshlab_delay.py)."""
        probe = run(["tc", "-n", self._plan.switch_ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"], check=False)
        if probe.returncode == 0:
            run(["tc", "-n", self._plan.switch_ns, "qdisc", "del", "dev", "lo", "root"], check=False)
            return "netem"
        return "nfqueue"

    def drop_connections(self, name: str) -> int:
        """Kill the host's SSH sessions (every sshd process but the listener): their TCP
        connections close at once, transfers in flight are cut, new connections still work.
        Commands the sessions ran are left to end as they would after a network failure.
        Returns how many sshd processes were killed."""
        host = self.host(name)
        listener = self._processes.get((name, "sshd"))
        pids = {pid for pid in pids_in_namespaces([("net", ns_id(netns_path(host.netns)))])
                if exe_name(pid).startswith("sshd") and (listener is None or pid != listener.pid)}
        kill(pids, signal.SIGKILL)
        return len(pids)

    def stop(self, name: str) -> None:
        """Stop the host's sshd and drop its sessions: connections are refused until start()."""
        process = self._processes.pop((name, "sshd"), None)
        if process is not None:
            stop_process(process.pid, 5)
            process.wait(5)
        self.drop_connections(name)
        self._stopped.add(name)

    def start(self, name: str) -> None:
        """Start a stopped host's sshd again (same host key)."""
        if (name, "sshd") in self._processes and self._processes[name, "sshd"].poll() is None:
            return
        self._processes[name, "sshd"] = build.start_sshd(self.host(name))
        self._wait_sshd(self.host(name))
        self._stopped.discard(name)

    def ask_for_password(self, name: str, asking: bool = True) -> None:
        """Restart the host's sshd so that it refuses every key and asks for a password (or,
        with asking=False, as it was): a bastion with password logins. Sessions are dropped."""
        host = self.host(name)
        self.stop(name)
        (host.ssh_dir / "sshd_config").write_text(build.sshd_config(host, self._set_docker_host, ask_password=asking))
        self.start(name)
        (self._asking.add if asking else self._asking.discard)(name)

    def partition(self, name: str) -> None:
        """Silently drop every packet to and from the host's link (in the switch): connections
        hang and new ones time out, as when a server or its network dies. heal() undoes it."""
        if name not in self._partitioned:
            for rule in self._rules(name, ["-j", "DROP"]):
                self._iptables("-I", rule[0], "1", *rule[1:])
            self._partitioned.add(name)

    def heal(self, name: str) -> None:
        if name in self._partitioned:
            for rule in self._rules(name, ["-j", "DROP"]):
                self._iptables("-D", *rule)
            self._partitioned.discard(name)

    def set_delay(self, name: str, ms: float) -> None:
        """Hold every packet to and from the host `ms` milliseconds: a round trip between the
        test process and the host (TCP handshake, ping, one SSH request/response) takes about
        2 x ms more. Traffic between two delayed hosts is delayed once per direction with
        NFQUEUE (only one queue applies), twice with netem. See tests/sshlab_delay.py."""
        self.clear_delay(name)
        host = self.host(name)
        if self.delay_mechanism == "netem":
            run(["tc", "-n", host.netns, "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", f"{ms}ms"])
            run(["tc", "-n", self._plan.switch_ns, "qdisc", "replace", "dev", host.port, "root", "netem", "delay", f"{ms}ms"])
        else:
            self._start_delay_daemon(host, ms)
            for rule in self._rules(name, ["-j", "NFQUEUE", "--queue-num", str(host.index), "--queue-bypass"]):
                self._iptables("-A", *rule)
        self._delays[name] = ms

    def clear_delay(self, name: str | None = None) -> None:
        """Remove the delay of one host, or of every host."""
        for host_name in [name] if name else list(self._delays):
            ms = self._delays.pop(host_name, None)
            if ms is None:
                continue
            host = self.host(host_name)
            if self.delay_mechanism == "netem":
                run(["tc", "-n", host.netns, "qdisc", "del", "dev", "eth0", "root"], check=False)
                run(["tc", "-n", self._plan.switch_ns, "qdisc", "del", "dev", host.port, "root"], check=False)
                continue
            for rule in self._rules(host_name, ["-j", "NFQUEUE", "--queue-num", str(host.index), "--queue-bypass"]):
                self._iptables("-D", *rule)
            time.sleep(ms / 1000 + 0.05)  # let the packets still queued get their verdict
            daemon = self._processes.pop((host_name, "delay"))
            stop_process(daemon.pid, 2)
            daemon.wait(5)

    def delays(self) -> dict[str, float]:
        return dict(self._delays)

    def link_state(self, name: str) -> str:
        """What shapes the host's link now, as the kernel reports it: `tc qdisc show` of the
        host's eth0 and of its switch port, and the switch's iptables FORWARD rules (delays
        through NFQUEUE, partitions)."""
        host = self.host(name)
        parts = [
            run(["tc", "-n", host.netns, "qdisc", "show", "dev", "eth0"]).stdout,
            run(["tc", "-n", self._plan.switch_ns, "qdisc", "show", "dev", host.port]).stdout,
            self._iptables("-S", "FORWARD").stdout,
        ]
        return "".join(parts)

    def reset(self) -> None:
        """Undo every failure helper: known_hosts restored, password logins undone, delays
        cleared, partitions healed, stopped hosts started."""
        self.restore_known_hosts()
        for name in list(self._asking):
            self.ask_for_password(name, asking=False)
        self.clear_delay()
        for name in list(self._partitioned):
            self.heal(name)
        for name in list(self._stopped):
            self.start(name)

    def _rules(self, name: str, target: list[str]) -> list[list[str]]:
        """FORWARD rules (chain first) matching the bridged traffic of the host's switch port."""
        port = self.host(name).port
        return [["FORWARD", "-m", "physdev", "--physdev-in", port, *target],
                ["FORWARD", "-m", "physdev", "--physdev-out", port, *target]]

    def _iptables(self, *args: str) -> subprocess.CompletedProcess:
        # The switch namespace's own firewall (empty, policy ACCEPT); -w waits for the xtables lock.
        return run(in_host(["iptables", "-w", *args], netns=self._plan.switch_ns))

    def _start_delay_daemon(self, host: HostPlan, ms: float) -> None:
        """The NFQUEUE daemon for the host's queue, in the switch namespace; it prints "ready"
        once the queue is bound (before that, the rules would hold packets for nobody)."""
        log = self._plan.path / f"delay-{host.name}.log"
        with open(log, "ab") as err:
            process = subprocess.Popen(
                in_host([sys.executable, str(DELAY_SCRIPT), str(host.index), str(ms)], netns=self._plan.switch_ns),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, start_new_session=True,
            )
        self._processes[host.name, "delay"] = process
        ready, _, _ = select.select([process.stdout], [], [], 10)
        if not ready or process.stdout.readline().strip() != b"ready":
            stop_process(process.pid, 2)
            process.wait(5)
            self._processes.pop((host.name, "delay"))
            raise LabError(f"delay daemon for {host.name} did not start; its log ({log}):\n{log.read_text().strip()}")
