"""Who holds which card on a host: every container of the host's engine that can reach a card,
whoever made it.

A container reaches a card when
- it was given the card's device node (`docker run --device /dev/davinci3`, envctl's own
  containers): HostConfig.Devices[].PathOnHost is the node's path on the host;
- it is privileged (`--privileged`, as vendor scripts start them): every device node of the
  host is in it, so it holds every card;
- it has the host's device directory (or the node) bind-mounted and a device cgroup rule that
  lets it open the node (`-v /dev:/dev --device-cgroup-rule 'c 236:* rwm'`): HostConfig.
  DeviceCgroupRules ("TYPE MAJOR:MINOR ACCESS", `*` for any number, type `a` for all; the
  kernel's devices cgroup syntax) matched against the node's numbers, read on the host with
  stat(1);
- the Ascend Docker Runtime adds the nodes itself (HostConfig.Runtime "ascend" with
  ASCEND_VISIBLE_DEVICES=0,1 in Config.Env; Ascend/ascend-docker-runtime), or the NVIDIA runtime
  does (HostConfig.DeviceRequests with Driver "nvidia", Count -1 for all or DeviceIDs; or Runtime
  "nvidia" with NVIDIA_VISIBLE_DEVICES).

Only a container that runs (running, paused or restarting) holds its cards; a stopped one is
listed (it takes them again when started) but does not keep anyone from them. The fields read
are those of the Engine API's ContainerInspect; envctl's labels name the environment and the
user who brought it up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from envctl.cards import CardsError, parse_indices
from envctl.containers import LABEL_MANIFEST, LABEL_USER, LABEL_VARIANT

NODE_PREFIX = {"mlu": "cambricon_dev", "npu": "davinci", "cuda": "nvidia"}  # /dev/<prefix>N is card N
HOLDING = ("running", "paused", "restarting")  # State.Status values in which a container holds its cards


@dataclass(frozen=True)
class Holder:
    """A container that reaches some cards of one device family."""

    container: str  # its name, without the engine's leading "/"
    container_id: str
    cards: tuple[int, ...]  # host indices it reaches, ascending
    how: str  # "device nodes" | "privileged" | "Ascend runtime" | "NVIDIA runtime" | "process" (no container)
    status: str  # the engine's State.Status
    environment: str | None = None  # manifest[:variant] when envctl made it
    user: str | None = None  # who brought it up (envctl's label), when envctl made it
    since: str | None = None  # when it started (running) or was created, "YYYY-MM-DD HH:MM UTC"

    @property
    def holds(self) -> bool:
        return self.status in HOLDING

    def describe(self) -> str:
        """`envctl-chatglm3-mlu (environment chatglm3-mlu, user alice, since 2026-11-30 10:02 UTC)`
        or `vendor-job (not envctl's: privileged, since ...)`."""
        if self.how == "process":
            return f"{self.container} (in no container: listed by the vendor tool)"
        facts = []
        if self.environment:
            facts.append(f"environment {self.environment}")
            facts.append(f"user {self.user}" if self.user else "user unknown")
        else:
            facts.append("not envctl's" + (f": {self.how}" if self.how != "device nodes" else ""))
        if self.environment and self.how == "privileged":
            facts.append("privileged")
        if self.since:
            facts.append(f"since {self.since}" if self.holds else f"created {self.since}")
        if not self.holds:
            facts.append(self.status)
        return f"{self.container} ({', '.join(facts)})"

    def as_dict(self) -> dict:
        """`since`: when a holder that holds started; `created`: when one that does not (stopped,
        created) was made; the other is null."""
        return {"container": self.container, "id": self.container_id[:12], "cards": list(self.cards), "how": self.how,
                "status": self.status, "environment": self.environment, "user": self.user,
                "since": self.since if self.holds else None, "created": None if self.holds else self.since}


_TIME = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2})")


def _when(text: str | None) -> str | None:
    match = _TIME.match(text or "")
    return f"{match.group(1)} {match.group(2)} UTC" if match and not text.startswith("0001-") else None


def _env(config: dict) -> dict[str, str]:
    out = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _indices(text: str, present: tuple[int, ...]) -> tuple[int, ...]:
    """A visibility variable's value: "all" is every card; otherwise indices as envctl reads them."""
    text = text.strip()
    if text.lower() == "all":
        return present
    try:
        return parse_indices(text)
    except CardsError:
        return ()


def _bound_nodes(attrs: dict, node_path, present: tuple[int, ...]) -> list[int]:
    """The cards whose node is inside a bind mount of the container (the node itself, /dev, or
    any directory above it)."""
    sources = [m.get("Source") or "" for m in attrs.get("Mounts") or [] if m.get("Type") == "bind"]
    sources = [src.rstrip("/") or "/" for src in sources if src]
    return [card for card in present
            if any(node_path(card) == src or node_path(card).startswith(src if src == "/" else src + "/") for src in sources)]


def _rule_allows(rule: str, major: int, minor: int) -> bool:
    """`c 236:* rwm`, `a *:* rwm`, `a` (all): whether it lets a character device major:minor be opened."""
    words = rule.split()
    if not words or words[0] not in ("a", "c"):
        return False
    if words[0] == "a" and len(words) == 1:
        return True
    if len(words) < 3 or not ({"r", "w"} & set(words[2])):
        return False
    want_major, _, want_minor = words[1].partition(":")
    return all(w == "*" or (w.isdecimal() and int(w) == n) for w, n in ((want_major, major), (want_minor, minor)))


def _by_cgroup_rule(attrs: dict, node_path, present: tuple[int, ...], numbers: dict[str, tuple[int, int]]) -> tuple[int, ...]:
    rules = (attrs.get("HostConfig") or {}).get("DeviceCgroupRules") or []
    if not rules:
        return ()
    return tuple(card for card in _bound_nodes(attrs, node_path, present) if node_path(card) in numbers
                 and any(_rule_allows(rule, *numbers[node_path(card)]) for rule in rules))


def _reached(attrs: dict, kind: str, node_path, present: tuple[int, ...],
             numbers: dict[str, tuple[int, int]] | None = None) -> tuple[tuple[int, ...], str]:
    host_config = attrs.get("HostConfig") or {}
    if host_config.get("Privileged"):
        return present, "privileged"
    by_node = {node_path(card): card for card in present}
    cards = {by_node[d.get("PathOnHost")] for d in host_config.get("Devices") or [] if d.get("PathOnHost") in by_node}
    if cards:
        return tuple(sorted(cards)), "device nodes"
    cards = _by_cgroup_rule(attrs, node_path, present, numbers or {})
    if cards:
        return cards, "device cgroup rule"
    env = _env(attrs.get("Config") or {})
    runtime = host_config.get("Runtime")
    if kind == "npu" and runtime == "ascend" and env.get("ASCEND_VISIBLE_DEVICES"):
        return tuple(sorted(set(_indices(env["ASCEND_VISIBLE_DEVICES"], present)))), "Ascend runtime"
    if kind == "cuda":
        for request in host_config.get("DeviceRequests") or []:
            if request.get("Driver") in ("nvidia", "", None) and ["gpu"] in (request.get("Capabilities") or [["gpu"]]):
                if request.get("Count") == -1:
                    return present, "NVIDIA runtime"
                ids = [int(i) for i in request.get("DeviceIDs") or [] if str(i).isdecimal()]
                if ids:
                    return tuple(sorted(ids)), "NVIDIA runtime"
        if runtime == "nvidia" and env.get("NVIDIA_VISIBLE_DEVICES"):
            return tuple(sorted(set(_indices(env["NVIDIA_VISIBLE_DEVICES"], present)))), "NVIDIA runtime"
    return (), ""


def holders_from(inspected: list[dict], kind: str, node_path, present: tuple[int, ...],
                 numbers: dict[str, tuple[int, int]] | None = None) -> tuple[Holder, ...]:
    """Pure: the containers (ContainerInspect dicts, any state) that reach any of the `present`
    cards of family `kind`; `node_path(card)` is the real path of that card's node on the host
    (under the host root when simulated); `numbers`: node path → (major, minor), for device
    cgroup rules (without it, a container reaching cards through one is not seen). Sorted by
    container name."""
    out = []
    for attrs in inspected:
        cards, how = _reached(attrs, kind, node_path, present, numbers)
        if not cards:
            continue
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        state = attrs.get("State") or {}
        status = state.get("Status") or "unknown"
        environment = None
        if labels.get(LABEL_MANIFEST):
            variant = labels.get(LABEL_VARIANT)
            environment = f"{labels[LABEL_MANIFEST]}:{variant}" if variant else labels[LABEL_MANIFEST]
        since = _when(state.get("StartedAt")) if status in HOLDING else None
        out.append(Holder((attrs.get("Name") or "?").lstrip("/"), attrs.get("Id") or "", cards, how, status, environment,
                          labels.get(LABEL_USER), since or _when(attrs.get("Created"))))
    return tuple(sorted(out, key=lambda h: h.container))


def read_holders(client, kind: str, node_path, present: tuple[int, ...], host=None) -> tuple[Holder, ...]:
    """Every container of the engine (`client`, docker-py), inspected, → holders_from. One
    list call; docker-py inspects each container for its full attributes. With `host` (a Host),
    the nodes' numbers are read there when a container has device cgroup rules and a bind mount
    over a card's node (one stat(1) run; no run otherwise)."""
    if kind not in NODE_PREFIX or not present:
        return ()
    # ignore_removed: a container removed between the list and its inspection (another `up`
    # replacing its own) holds nothing; without it docker-py raises NotFound for the whole list.
    inspected = [c.attrs for c in client.containers.list(all=True, ignore_removed=True)]
    numbers = None
    if host is not None and any((a.get("HostConfig") or {}).get("DeviceCgroupRules") and _bound_nodes(a, node_path, present)
                                for a in inspected):
        numbers = node_numbers(host, [node_path(card) for card in present])
    return holders_from(inspected, kind, node_path, present, numbers)


def node_numbers(host, paths: list[str]) -> dict[str, tuple[int, int]]:
    """path → (major, minor) of each device node, read on `host` with `stat -L -c '%t %T %n'`
    (hex numbers; GNU and BusyBox stat alike). A node stat cannot read is left out."""
    result = host.run(["stat", "-L", "-c", "%t %T %n", "--", *paths])
    out = {}
    for line in result.stdout.splitlines():
        major, minor, path = (line.split(" ", 2) + ["", ""])[:3]
        try:
            out[path] = (int(major, 16), int(minor, 16))
        except ValueError:
            continue
    return out


def with_processes(holders: tuple[Holder, ...], reading) -> tuple[Holder, ...]:
    """`holders` and, for a card with processes in the vendor tool's list (cnmon, npu-smi) but no
    running container holding it, those processes (a job started on the host itself, or in a
    container envctl cannot see): the card is in use all the same. `reading`: VendorReading or None."""
    if reading is None:
        return holders
    held = {card for h in holders if h.holds for card in h.cards}
    extra = [Holder(f"process {p.pid} {p.name}".rstrip(), "", (p.card,), "process", "running")
             for p in reading.processes if p.card not in held]
    return holders + tuple(extra)


def node_path_for(kind: str, under_root):
    """card → the real path of its device node on the host (`under_root`: the host's mapping)."""
    prefix = NODE_PREFIX.get(kind, "")
    return lambda card: under_root(f"/dev/{prefix}{card}")
