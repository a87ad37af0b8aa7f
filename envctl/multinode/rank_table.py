"""`exec ENTRYPOINT --nodes a,b --rank-table` on Ascend: the HCCL rank table v1.0 of the run.

Each node's host is asked once, over the SSH connection envctl holds, for every card the
environment uses (the host's physical device ids): `hccn_tool -i ID -ip -g` (its device IP) and
`hccn_tool -i ID -link -g` (its link state), with the driver's hccn_tool
(/usr/local/Ascend/driver/tools/hccn_tool, where the driver installs it and MindCluster's
npu-exporter calls it; else one on the host's PATH directories), and /etc/hccn.conf read
beside. The table (envctl.nodes.ranktable) is written as hccl.json into every node's per-run
directory and RANK_TABLE_FILE names it in the container.

Checks before anything starts (exit 5, each problem named by node and device):
- every card has a device IP (hccn_tool's `ipaddr:`, or /etc/hccn.conf's `address_<id>` where
  the host has no hccn_tool, as hccl_tools.py falls back);
- where both exist, they agree (a stale /etc/hccn.conf made one NPU of 32 unreachable and
  surfaced four layers away: vllm-project/vllm-ascend PR #16847);
- every card's link is UP (a DOWN port hangs the collective until HCCL_CONNECT_TIMEOUT);
- no device IP appears twice in the run.
Device IPs of different nodes need not share a subnet (Ascend's multi-node guides give each
server its own, routed), so that is not checked.
"""

from __future__ import annotations

from envctl.errors import EXIT_HOST_NOT_READY, EXIT_USAGE, EnvctlError
from envctl.hosts.local import TOOL_DIRS
from envctl.nodes.ranktable import RankTableError, parse_hccn_conf, parse_hccn_ip, parse_hccn_link, rank_table, render

HCCN_TOOL = "/usr/local/Ascend/driver/tools/hccn_tool"
HCCN_CONF = "/etc/hccn.conf"
FILE_NAME = "hccl.json"

# $1: hccn_tool candidates separated by ':' (the first executable one is used), then the
# device ids. Prints `@@tool PATH` (or `@@tool -`), then per device and query its output
# between `@@ip ID` / `@@link ID` and `@@rc CODE`.
_PROBE = r'''
tool=-; IFS=:; for t in $1; do if [ -f "$t" ] && [ -x "$t" ]; then tool=$t; break; fi; done; unset IFS; shift
echo "@@tool $tool"
[ "$tool" = - ] && exit 0
for i in "$@"; do
  echo "@@ip $i"; "$tool" -i "$i" -ip -g 2>&1; rc=$?; echo; echo "@@rc $rc"
  echo "@@link $i"; "$tool" -i "$i" -link -g 2>&1; rc=$?; echo; echo "@@rc $rc"
done
'''


def _sections(output: str) -> tuple[str | None, dict]:
    """(the hccn_tool used or None, {(query, device id): (its exit code, its output)})."""
    tool, found, current, lines = None, {}, None, []
    for line in output.splitlines():
        if line.startswith("@@tool "):
            tool = None if line[7:].strip() == "-" else line[7:].strip()
        elif line.startswith(("@@ip ", "@@link ")):
            query, _, device = line[2:].partition(" ")
            current, lines = (query, int(device)), []
        elif line.startswith("@@rc ") and current is not None:
            found[current] = (int(line[5:]), "\n".join(lines).strip())
            current = None
        elif current is not None:
            lines.append(line)
    return tool, found


def node_devices(host, name: str, cards: list[int]) -> tuple[list[tuple[int, str]], list[str], list[str]]:
    """([(physical id, device ip)], problems, notes) for one node's cards."""
    candidates = ":".join([host.under_root(HCCN_TOOL)] + [host.under_root(f"{d}/hccn_tool") for d in TOOL_DIRS])
    probe = host.run(["sh", "-c", _PROBE, "sh", candidates, *map(str, cards)], timeout=120)
    if probe.returncode != 0:
        return [], [f"{name}: asking hccn_tool failed: {probe.stderr.strip() or probe.returncode}"], []
    tool, outputs = _sections(probe.stdout)
    conf_text = host.read_text(host.under_root(HCCN_CONF))
    problems, notes, devices = [], [], []
    try:
        conf = parse_hccn_conf(conf_text) if conf_text is not None else {}
    except RankTableError as problem:
        return [], [f"{name}: {problem}"], []
    if tool is None:
        notes.append(f"{name}: no hccn_tool at {host.under_root(HCCN_TOOL)}: device IPs from {HCCN_CONF}, links not checked")
    if not cards:
        problems.append(f"{name}: the environment uses no NPU card")
    for card in cards:
        ip = None
        if tool is not None:
            failed = [f"hccn_tool -i {card} -{query} -g failed (exit code {code}): {text or 'no output'}"
                      for query in ("ip", "link") for code, text in [outputs.get((query, card), (-1, ""))] if code != 0]
            if failed:
                problems += [f"{name}: device {card}: {text}" for text in failed]
                continue
            try:
                ip = parse_hccn_ip(outputs[("ip", card)][1], card)
                link = parse_hccn_link(outputs[("link", card)][1], card)
            except RankTableError as problem:
                problems.append(f"{name}: device {card}: {problem}")
                continue
            if link != "UP":
                problems.append(f"{name}: device {card}: link status {link} (hccn_tool -i {card} -link -g); "
                                "HCCL cannot reach the other nodes through it")
            if card in conf and conf[card] != ip:
                problems.append(f"{name}: device {card}: hccn_tool says IP {ip} but {HCCN_CONF} has address_{card}={conf[card]}; "
                                f"correct {HCCN_CONF} (or the device IP: hccn_tool -i {card} -ip -s address IP netmask MASK)")
        else:
            ip = conf.get(card)
            if ip is None:
                problems.append(f"{name}: device {card} has no IP: no hccn_tool and no address_{card} in "
                                f"{host.under_root(HCCN_CONF)}")
                continue
        devices.append((card, ip))
    return devices, problems, notes


def variables(contract) -> dict[str, str]:
    """What every node's process gets: RANK_TABLE_FILE, the table in the per-run directory."""
    return {"RANK_TABLE_FILE": f"{contract.run_dir}/{FILE_NAME}"}


def build(sites: list, contract, device_kind: str, say) -> tuple[str, list]:
    """Ask every node's hccn_tool and check the answers (reading only: `plan --nodes
    --rank-table` shows what `exec` would write). Returns (the table as JSON text, [(server
    address, [(physical id, device ip)])] in rank order). Raises EnvctlError: exit 2 for a
    device kind other than npu, exit 5 with every problem found."""
    if device_kind != "npu":
        raise EnvctlError(f"--rank-table is for Ascend NPUs (device kind npu); this environment's is {device_kind}",
                          exit_code=EXIT_USAGE)
    servers, problems = [], []
    for site, node in zip(sites, contract.nodes):
        devices, found, notes = node_devices(site.host, site.name, list(site.environment.cards))
        problems += found
        for note in notes:
            say(f"note: {note}")
        servers.append((node.address, devices))
    seen: dict[str, str] = {}
    for (server, devices), site in zip(servers, sites):
        for card, ip in devices:
            where = f"{site.name} device {card}"
            if ip in seen:
                problems.append(f"device IP {ip} twice: {seen[ip]} and {where}")
            seen.setdefault(ip, where)
    if problems:
        raise EnvctlError("the HCCL rank table cannot be built; nothing was started:\n  " + "\n  ".join(problems),
                          exit_code=EXIT_HOST_NOT_READY)
    try:
        text = render(rank_table(servers))
    except RankTableError as problem:
        raise EnvctlError(str(problem), exit_code=EXIT_HOST_NOT_READY) from None
    for site, (server, devices) in zip(sites, servers):
        say(f"[{site.rank} {site.name}] rank table: " + ", ".join(f"device {card} {ip}" for card, ip in devices))
    return text, servers


def write(sites: list, contract, text: str) -> dict[str, str]:
    """Write a table `build` made into every node's per-run directory (which must exist);
    returns the variables for every node (RANK_TABLE_FILE)."""
    from envctl.multinode.prepare import run_dir_on_host

    for site in sites:
        site.host.write_file(f"{run_dir_on_host(site, contract)}/{FILE_NAME}", text.encode("utf-8"))
    return variables(contract)
