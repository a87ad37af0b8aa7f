"""The accelerator part of a `shell` export's node script: the cards' device nodes and the
vendor's control nodes as `--device`, the driver's host paths read-only, as `envctl up` passes
them (envctl.devices.npu, envctl.devices.mlu), checked on the server when the script runs.

- Required nodes (each card's node; NPU: /dev/davinci_manager, /dev/devmm_svm, /dev/hisi_hdc;
  MLU: /dev/cambricon_ctl): a missing one stops the script with exit 5 before anything starts,
  as `up` refuses a host without them.
- Nodes `up` passes when the host has them (NPU: /dev/dvpp_cmdlist; MLU: cambricon_ipcm<N>,
  commu<N>) and the driver's host paths: added only when present (`test -e`), as `up` mounts what
  the host has.
- With the Ascend runtime (`runtime: ascend`) the runtime adds the nodes and driver mounts itself
  from ASCEND_VISIBLE_DEVICES (host indices), so the script sets that variable instead.

Cards are host indices: the manifest's device.cards list, else the first N (N: --cards or the
manifest's count). The lines build the `docker run` options in the script's positional
parameters (`set --`), which the script passes as "$@".
"""

from __future__ import annotations

import shlex

from envctl.devices import mlu, npu
from envctl.export.model import Export

DEVICE_KINDS = ("npu", "mlu")


def card_indices(export: Export) -> tuple[int, ...]:
    """The host indices of the cards each server gives the container."""
    return tuple(export.extra.get("card_indices") or range(export.cards))


def _nodes(export: Export) -> tuple[list[str], list[str]]:
    """(required nodes, nodes passed when present) for the export's device kind."""
    cards = card_indices(export)
    if export.device_kind == "npu":
        return [f"/dev/davinci{c}" for c in cards] + list(npu.MANAGER_NODES), list(npu.SHARED_NODES_IF_PRESENT)
    required = [mlu.CONTROL_NODE] + [mlu.card_nodes(c)[0] for c in cards]
    return required, [path for c in cards for path in mlu.card_nodes(c)[1:]]


def lines(export: Export) -> list[str]:
    """POSIX sh lines that leave the device options in "$@" (and exit 5 on a missing node)."""
    cards = ",".join(map(str, card_indices(export)))
    label = {"npu": "the Ascend driver", "mlu": "the Cambricon driver"}[export.device_kind]
    out = ["set --  # the accelerator's docker run options, built below from what this server has"]
    if export.device_kind == "npu" and export.runtime == "ascend":
        out.append(f"set -- -e ASCEND_VISIBLE_DEVICES={cards}  # the Ascend runtime adds nodes and driver mounts")
        return out
    required, optional = _nodes(export)
    out += [
        f"for envctl_node in {' '.join(required)}; do",
        '  if [ ! -c "$envctl_node" ]; then',
        f'    echo "envctl: $(hostname): device node $envctl_node is missing (cards {cards}; is {label} loaded?)" >&2',
        "    exit 5",
        "  fi",
        '  set -- "$@" --device "$envctl_node"',
        "done",
    ]
    if optional:
        out += [
            f"for envctl_node in {' '.join(optional)}; do  # passed when the server has them, as envctl up does",
            '  if [ -c "$envctl_node" ]; then set -- "$@" --device "$envctl_node"; fi',
            "done",
        ]
    for path in export.host_paths:
        if path.what == "driver":
            spec = shlex.quote(f"{path.source}:{path.target}" + (":ro" if path.read_only else ""))
            out.append(f'if [ -e {shlex.quote(path.source)} ]; then set -- "$@" -v {spec}; fi')
    return out
