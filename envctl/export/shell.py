"""The `shell` export: one script per node (node-<rank>.sh) of plain `docker` commands, for servers
where envctl cannot be installed. Each script loads the image when the server lacks it (from
the `envctl save` tarball ENVCTL_IMAGE_TARBALL names; exit 5 when that file cannot be read or
loaded or holds another image, before docker run would look for it in a registry) or, for an
image the manifest pulls, pulls it by digest (envctl.export.pulled), warns for a
container.pass_env name not set (envctl.export.passed), writes the
prelude's files on the server, and runs the container as `envctl up` would (host network and
IPC, /dev/shm size, capabilities, user, runtime, the artifacts from envctl's directory on the
server, the workspace, the environment) with the prelude as its command: rank baked into the
script, the master's address its argument.

NPU and MLU environments carry their cards as `up` does (envctl.export.shell_devices): the
device nodes checked on the server (exit 5 when one is missing), the driver's host paths that
are present. CUDA is refused (exit 2): `up` passes NVIDIA's cards through its runtime's device
requests, which this format does not write.
"""

from __future__ import annotations

import shlex

from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.export import hostscript, passed, pulled, shell_devices
from envctl.export.files import node_spec, prelude_files
from envctl.export.formats import Format
from envctl.export.readme import written_by
from envctl.export.model import PRELUDE_DIR, Export


def _reference(export: Export) -> str:
    return export.reference


def _run_options(export: Export) -> list[str]:
    """`docker run` options as `envctl up` sets them, from the export (one per line)."""
    options = []
    if export.host_network:
        options.append("--network host")
    if export.host_ipc:
        options.append("--ipc host")
    if export.extra.get("host_pid"):
        options.append("--pid host")
    if export.shm_bytes:
        options.append(f"--shm-size {export.shm_bytes}")
    options += [f"--cap-add {shlex.quote(cap)}" for cap in export.cap_add]
    if export.privileged:
        options.append("--privileged")
    if export.user:
        options.append(f"--user {shlex.quote(export.user)}")
    if export.runtime:
        options.append(f"--runtime {shlex.quote(export.runtime)}")
    for path in export.host_paths:
        if path.what == "driver":  # added by shell_devices when present on the server
            continue
        spec = f"{path.source}:{path.target}" + (":ro" if path.read_only else "")
        options.append(f"-v {shlex.quote(spec)}")
    if export.workdir:
        options.append(f"-w {shlex.quote(export.workdir)}")
    return options


def script(export: Export, rank: int) -> str:
    """node-<rank>.sh (POSIX sh)."""
    hostscript.refuse_claim(export, "shell")
    if export.device_kind not in ("cpu", *shell_devices.DEVICE_KINDS):
        raise EnvctlError(f"--format shell does not pass {export.device_kind} cards yet",
                          hint="use --format slurm (or exec --nodes): there `envctl up --hosts` makes the containers "
                               "with their devices", exit_code=EXIT_USAGE)
    reference = _reference(export)
    name = f"{export.job}-node-{rank}"
    image = shlex.quote(export.image.ref)
    master = '"${1:-$(hostname)}"' if rank == 0 else '"$1"'
    devices = export.device_kind in shell_devices.DEVICE_KINDS
    lines = [
        "#!/bin/sh",
        f"# {export.job}: {reference} `{export.entrypoint}`, node {rank} of {export.nnodes} "
        f"({'the master' if rank == 0 else 'give the master address'}).",
        f"# Written by `{written_by(export, 'shell')}`;",
        "# README.md beside it says what each server needs. Start every node's script at about the same time:",
        f"#   sh node-0.sh            on the master;   sh node-R.sh MASTER_ADDR   on node R",
        "set -eu",
    ]
    if rank:
        lines += [
            'if [ $# -lt 1 ]; then',
            f'  echo "usage: sh node-{rank}.sh MASTER_ADDR (the address of the server running node-0.sh)" >&2',
            "  exit 2",
            "fi",
        ]
    lines += passed.check_lines(export)
    if devices:  # checked first: a server without the cards stops before loading anything
        lines.append(f"envctl_master={master}")
        master = '"$envctl_master"'
        lines += shell_devices.lines(export)
    if export.image.pulled is not None:  # pulled by digest (through a mirror), not loaded from a tarball
        lines += pulled.shell_lines(export.image.pulled)
    else:
        lines += _load_lines(export, image, reference)
    lines.append("# The prelude's files, on this server (mounted read-only into the container).")
    return "\n".join(lines + _tail(export, rank, name, master, devices)) + "\n"


def _load_lines(export: Export, image: str, reference: str) -> list[str]:
    """sh lines loading an image that no registry serves from ENVCTL_IMAGE_TARBALL when the
    server lacks it (exit 5 when that file cannot be read or loaded or holds another image)."""
    return [
        f"image={image}",
        'if ! docker image inspect "$image" >/dev/null 2>&1; then',
        '  if [ -z "${ENVCTL_IMAGE_TARBALL:-}" ]; then',
        f'    echo "envctl: $(hostname) has no image $image: set ENVCTL_IMAGE_TARBALL to the file of '
        f'envctl save {reference} -o FILE" >&2',
        "    exit 5",
        "  fi",
        '  if [ ! -r "$ENVCTL_IMAGE_TARBALL" ]; then',
        '    echo "envctl: $(hostname): cannot read ENVCTL_IMAGE_TARBALL=$ENVCTL_IMAGE_TARBALL" >&2',
        "    exit 5",
        "  fi",
        "  # docker load reads plain and gzip/bzip2/xz-compressed tarballs; a cut or damaged one fails it.",
        '  if ! docker load -i "$ENVCTL_IMAGE_TARBALL"; then',
        '    echo "envctl: $(hostname): docker load could not load $ENVCTL_IMAGE_TARBALL (cut short or damaged?)" >&2',
        "    exit 5",
        "  fi",
        '  if ! docker image inspect "$image" >/dev/null 2>&1; then  # docker run would try a registry',
        '    echo "envctl: $(hostname): $ENVCTL_IMAGE_TARBALL does not hold $image (docker load said what it '
        'holds, above)" >&2',
        "    exit 5",
        "  fi",
        "fi",
    ]


def _tail(export: Export, rank: int, name: str, master: str, devices: bool) -> list[str]:
    lines = [
        f'envctl_dir="${{ENVCTL_EXPORT_DIR:-/var/tmp/envctl-export/{name}}}"',
        'mkdir -p "$envctl_dir"',
    ]
    for file_name, text in sorted(prelude_files(node_spec(export)).items()):
        lines.append(f"cat > \"$envctl_dir/{file_name}\" <<'{hostscript.FILE_END}'")
        lines += text.rstrip("\n").split("\n")
        lines.append(hostscript.FILE_END)
    options = [*_run_options(export), f'-v "$envctl_dir:{PRELUDE_DIR}:ro"', f"-e ENVCTL_EXPORT_RANK={rank}",
               f"-e ENVCTL_EXPORT_MASTER={master}", *hostscript.env_options(export)]
    lines += [
        f"docker rm -f {name} >/dev/null 2>&1 || true  # a container left by an earlier start",
        "# As envctl up runs it, with the prelude as its command; docker run passes signals on to it.",
        f"exec docker run --rm --name {name} \\",
        *[f"    {option} \\" for option in options],
        *(['    "$@" \\'] if devices else []),
        f"    \"$image\" {shlex.join(export.container_command())}",
    ]
    return lines


def write(export: Export) -> dict[str, str]:
    return {f"node-{rank}.sh": script(export, rank) for rank in range(export.nnodes)}


def how_to_run(export: Export) -> list[str]:
    reference = _reference(export)
    return [
        f"Copy node-R.sh to server R (rank 0 is the master) and start them all at about the same time: `sh node-0.sh` "
        "on the master, `sh node-R.sh MASTER_ADDR` on the others (the master's address the others reach it at). "
        "Each waits for the others (the prelude's rendezvous on the master port) before the command starts.",
        "",
        (f"A server without the image {export.image.ref} pulls it (node prerequisites below). " if export.image.pulled else
         f"A server without the image {export.image.ref} loads it from `ENVCTL_IMAGE_TARBALL=FILE` (written by "
         f"`envctl save {reference} -o FILE`). ") + "The prelude's files go to /var/tmp/envctl-export/<job>-node-R "
        "(ENVCTL_EXPORT_DIR to choose). The container is named <job>-node-R and removed when it ends.",
        "",
        "Every server needs a docker CLI reaching its own engine, sh, and the paths the container mounts (below).",
    ]


FORMAT = Format("shell", "one sh script per node of plain docker commands, for servers without envctl", write,
                how_to_run)
