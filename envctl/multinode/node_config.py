"""What of a node's container configuration must be equal across the nodes of one run, and what
belongs to its host.

Each node's container was created by `up` on its own host from the same manifest, and its
ContainerSpec (envctl.containers) is recorded in the container's `io.envctl.spec` label (the
spec with env values replaced by digests). Its config hash covers every field, so two hosts
with different cards, host roots or driver files always have different hashes; the run is
compared on the node-independent view instead, field by field of the spec:

Must be equal (a difference blocks the run; the processes would not run the same program on
the same terms): image, manifest and variant, every env variable but those below, shm size, IPC, network, PID mode, privileged, the OCI runtime, user, working directory,
ulimits, capabilities, ports, the command, and every mount by its container path and read-only
flag (the workspace, artifacts, the manifest's own mounts).

Per host (said as information, never blocking), each for its reason:
- which `cards` (their count is compared by the preflight), their device nodes and the
  variables naming host indices (ASCEND_VISIBLE_DEVICES for the Ascend runtime,
  NVIDIA_VISIBLE_DEVICES for NVIDIA's): `up` picks free cards on each host, and inside the container they are numbered from 0 on every node (the visibility
  variables the processes read, MLU_VISIBLE_DEVICES, ASCEND_RT_VISIBLE_DEVICES and
  CUDA_VISIBLE_DEVICES, are compared). Which variables name host indices is asked of the
  device family (envctl.devices), not listed here.
- mount sources and device nodes' host paths: they lie under the host's root (ENVCTL_HOST_ROOT
  or the inventory's `root`), cache and workspace, which are the host's own; the container
  sees the same container paths.
- `name` and ENVCTL_ENV (the name again): each engine has its own container names, and the
  same manifest gives the same name anyway.
- labels (who brought it up, envctl's version, the cards) are not part of the spec.

Warned, not blocking: device nodes and driver mounts the family passes only where the host has
them (Ascend's /etc/hccn.conf, driver/tools with hccn_tool, driver/topo, /dev/dvpp_cmdlist;
Cambricon's cnmon): a tool present in one node's container only can matter to a script that
calls it, but the driver's libraries and the cards themselves are checked elsewhere (`up`
refuses a host without its required nodes, the preflight compares the driver version).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from envctl.containers import LABEL_SPEC
from envctl.devices import family
from envctl.devices.base import Selection

PER_HOST_FIELDS = ("name", "cards", "devices", "mounts", "env")  # compared by the rules above, not as a whole
NAME_VARIABLE = "ENVCTL_ENV"  # envctl.plan._container_spec: the container name


class _EveryPath:
    """A host on which every path exists and is a character device: what a family would pass
    for some cards, everything it can pass (DeviceView)."""

    root = "/"

    def under_root(self, path: str) -> str:
        return path

    def is_char_device(self, path: str) -> bool:
        return True

    def exists(self, path: str) -> bool:
        return True


@dataclass(frozen=True)
class Compared:
    """One node against node 0: `problems` block, `warnings` are said, `notes` name what is
    legitimately its host's own."""

    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def recorded_spec(container) -> dict | None:
    """The spec recorded in the container's io.envctl.spec label (docker inspect's
    Config.Labels), or None when it has none or it is not JSON (created by another tool)."""
    attrs = getattr(container, "attrs", None) or {}
    text = ((attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_SPEC)
    try:
        spec = json.loads(text) if text else None
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def _select(kind: str, cards, runtime) -> Selection:
    return family(kind).select(_EveryPath(), list(cards), runtime)


def host_card_variables(kind: str, runtime: str | None) -> frozenset[str]:
    """The env variables the family sets to host card indices for this runtime: those whose
    value is the probe cards' host indices (2,3: not what the container numbers them, 0,1)."""
    probe = (2, 3)
    return frozenset(k for k, v in _select(kind, probe, runtime).env.items() if v == ",".join(map(str, probe)))


@dataclass(frozen=True)
class NodeView:
    """A node's container spec split: `shared` (spec field -> value) must be equal across
    nodes; `if_present` (container paths of the device nodes other than its cards' and of the
    driver mounts, which the family passes when the host has them) may differ with a warning;
    `per_host` (what is shown -> value: its cards and their device nodes, host root, sources)
    is its host's own."""

    shared: dict
    if_present: frozenset[str]
    per_host: dict


def node_view(spec: dict, kind: str, host_root: str = "/") -> NodeView:
    """Split a recorded spec (ContainerSpec.summary() as JSON); `kind`: the device kind;
    `host_root`: the host's root its device nodes and driver files lie under (shown only)."""
    cards = tuple(spec.get("cards") or ())
    runtime = spec.get("runtime")
    everything = _select(kind, cards, runtime)
    without_cards = {n.container_path for n in _select(kind, (), runtime).nodes}
    card_paths = {n.container_path for n in everything.nodes} - without_cards
    driver_targets = {m.target for m in everything.mounts}
    devices = [d.get("container_path") for d in spec.get("devices") or ()]
    mounts = spec.get("mounts") or ()
    per_card_env = host_card_variables(kind, runtime)
    env = dict(spec.get("env") or {})
    shared = {k: v for k, v in spec.items() if k not in PER_HOST_FIELDS}
    shared["env"] = {k: v for k, v in env.items() if k not in per_card_env and k != NAME_VARIABLE}
    shared["mounts"] = sorted((m.get("target"), bool(m.get("read_only"))) for m in mounts
                              if m.get("target") not in driver_targets)
    if_present = frozenset([d for d in devices if d not in card_paths] +
                           [m.get("target") for m in mounts if m.get("target") in driver_targets])
    per_host = {
        "host root": host_root,
        "cards": ",".join(map(str, cards)) or "-",
        "card device nodes": " ".join(sorted(d for d in devices if d in card_paths)) or "-",
        "container name": spec.get("name"),
        "mount sources": {m.get("target"): m.get("source") for m in mounts},
        "device host paths": {d.get("container_path"): d.get("host_path") for d in spec.get("devices") or ()},
        **{f"env {k}": f"digest {env[k]}" for k in sorted(per_card_env) if k in env},
    }
    return NodeView(shared, if_present, per_host)


def _words(field: str) -> str:
    return field.replace("_", " ")


def compare(mine: NodeView, first: NodeView, first_name: str, said: tuple[str, ...] = ()) -> Compared:
    """A node's view against node 0's (named `first_name`); `said`: spec fields whose problem
    the caller reports in its own words (network_mode: not the host's)."""
    problems = []
    for key in sorted(set(mine.shared) | set(first.shared)):
        a, b = mine.shared.get(key), first.shared.get(key)
        if a == b or key in said:
            continue
        if key == "env":
            names = sorted(k for k in set(a or {}) | set(b or {}) if (a or {}).get(k) != (b or {}).get(k))
            problems.append(f"container env {', '.join(names)}: not set as on {first_name} "
                            "(values not shown: they may hold secrets)")
        elif key == "mounts":
            only_mine = sorted(set(map(tuple, a or ())) - set(map(tuple, b or ())))
            only_first = sorted(set(map(tuple, b or ())) - set(map(tuple, a or ())))
            said = [f"{t} ({'ro' if ro else 'rw'})" for t, ro in only_mine]
            theirs = [f"{t} ({'ro' if ro else 'rw'})" for t, ro in only_first]
            problems.append(f"container mounts differ from {first_name}'s: here {', '.join(said) or 'none'}; "
                            f"there {', '.join(theirs) or 'none'}")
        else:
            problems.append(f"container {_words(key)} {_shown(a)} differs from {first_name}'s {_shown(b)}")
    warnings = []
    for path in sorted(mine.if_present - first.if_present):
        warnings.append(f"{path} is in its container but not in {first_name}'s (passed where the host has it)")
    for path in sorted(first.if_present - mine.if_present):
        warnings.append(f"{path} is in {first_name}'s container but not in its own (passed where the host has it)")
    notes = []
    for key in mine.per_host:
        a, b = mine.per_host[key], first.per_host.get(key)
        if a == b:
            continue
        if isinstance(a, dict):
            changed = sorted(t for t in set(a) & set(b or {}) if a[t] != (b or {})[t])
            if changed:
                notes.append(f"{key} of {', '.join(changed)}")
        else:
            notes.append(f"{key} {a} ({first_name}: {b})")
    return Compared(tuple(problems), tuple(warnings), tuple(notes))


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
