"""The README.md every export writes: what it runs, how to start it, and every node prerequisite
(nothing an engine cannot express is dropped silently)."""

from __future__ import annotations

import shlex

from envctl.export.model import Export


def written_by(export: Export, format_name: str) -> str:
    """The `envctl export` command line that reproduces this export (every option given, shell-
    quoted; a secret --set value as a reference to its variable, never the value)."""
    reference = shlex.quote(f"{export.manifest}:{export.variant}" if export.variant else export.manifest)
    reference += "".join(f" --var {shlex.quote(f'{k}={v}')}" for k, v in export.vars.items())
    options = list(export.extra.get("options", ()))
    tail = options[options.index("--"):] if "--" in options else []
    head = options[:len(options) - len(tail)]
    return " ".join(["envctl", "export", reference, "--entrypoint", shlex.quote(export.entrypoint),
                     "--nodes", str(export.nnodes), "--format", format_name, *head, *tail])


def _kubernetes_advice(export: Export, format_name: str) -> list[str]:
    """What a Kubernetes export could not fill in: the ring-controller.atlas label of an NPU
    whose model the manifest does not name (or names as a server type not known here)."""
    from envctl.export import k8s_pod

    if format_name in ("slurm", "shell") or export.device_kind != "npu" or k8s_pod.ring_controller(export):
        return []
    model = export.extra.get("device_model")
    known = f"device.model {model!r} is not a server type known here" if model else "the manifest names no device.model"
    return [f"{known}: {k8s_pod.RING_ADVICE} (MindCluster's Ascend Operator, Device Plugin and Volcano plugin read it)"]


def _run_time(export: Export, format_name: str) -> list[str]:
    """The format's own prerequisites for a pulled image and for container.pass_env."""
    from envctl.export import passed, pulled

    out = []
    if export.image.pulled is not None:
        out += pulled.prerequisites(export.image.pulled, format_name, export.reference, export.extra.get("pull_secret"))
    return out + passed.prerequisites(export, format_name)


def render(export: Export, format_name: str, how_to_run: list[str]) -> str:
    reference = export.reference
    lines = [
        f"# {export.job}: {reference} `{export.entrypoint}` on {export.nnodes} nodes ({format_name})",
        "",
        f"Written by `{written_by(export, format_name)}`. Every node runs the same command as `envctl exec {export.entrypoint} --nodes ...`:",
        "",
        "```",
        shlex.join(export.command),
        "```",
        "",
        f"launcher {export.launcher}, {export.processes} process(es) per node, master port {export.master_port}, "
        f"image {export.image.ref}" + (f", {export.cards} {export.device_kind} card(s) per node" if export.cards else ""),
        "",
        "Each container first runs envctl's prelude (prelude.py, contract.py, node.json): it maps the engine's node "
        "index and master host name to envctl's contract (ENVCTL_*, MASTER_*, PET_*; the engine's RANK, WORLD_SIZE and "
        "LOCAL_RANK are removed), waits until the master answers on the master port and every node has reported, "
        f"writes nodes.json, hostfile and env to /envctl/nodes/<run id>, then starts the command.",
        "",
        "## How to run it",
        "",
        *[f"- {line}" for line in how_to_run],
        "",
        "## Node prerequisites",
        "",
        "Every node needs what follows; the engine cannot provide or express it:",
        "",
        *[f"- {item}" for item in export.prerequisites],
        *[f"- {item}" for item in _kubernetes_advice(export, format_name)],
        *[f"- {item}" for item in _run_time(export, format_name)],
    ]
    if export.notes:
        lines += ["", "## Notes from the manifest", "", *[f"- {note}" for note in export.notes]]
    return "\n".join(lines) + "\n"
