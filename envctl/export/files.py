"""The prelude's files, and writing an export's directory.

Every format ships the same three files into each container (a ConfigMap on Kubernetes, files
beside the script for Slurm and shell): prelude.py (envctl.export.prelude), contract.py (the
per-node contract, envctl/nodes/contract.py byte for byte, so the prelude computes what
`exec --nodes` computes) and node.json (the node's spec, from node_spec).
"""

from __future__ import annotations

import json
from pathlib import Path

from envctl.atomic import write_text_atomic
from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.export.model import Export

PACKAGE = Path(__file__).resolve().parent
MARKER = ".envctl-export"


def node_spec(export: Export, *, rank_from: str | None = None, master: str | None = None,
              master_from: str | None = None, names: list[str] | None = None) -> dict:
    """node.json: what the prelude needs. Give the rank's variable (`rank_from`) and the master
    as a host name (`master`) or a variable (`master_from`); ENVCTL_EXPORT_RANK and
    ENVCTL_EXPORT_MASTER in the container's environment take precedence (shell, slurm)."""
    spec = {"entrypoint": export.entrypoint, "nnodes": export.nnodes, "processes": export.processes,
            "port": export.master_port, "device_kind": export.device_kind, "timeout": export.timeout,
            "command": list(export.command), "workdir": export.workdir}
    for key, value in (("rank_from", rank_from), ("master", master), ("master_from", master_from), ("names", names)):
        if value is not None:
            spec[key] = value
    return spec


def prelude_files(spec: dict) -> dict[str, str]:
    """The prelude's files: name → text."""
    return {
        "prelude.py": (PACKAGE / "prelude.py").read_text(encoding="utf-8"),
        "contract.py": (PACKAGE.parent / "nodes" / "contract.py").read_text(encoding="utf-8"),
        "node.json": json.dumps(spec, indent=2, ensure_ascii=False) + "\n",
    }


def write_directory(directory: Path, files: dict[str, str], format_name: str) -> list[Path]:
    """Write every file (each whole or not at all; *.sh executable) and the format marker, which
    lists the files written; returns the paths. Raises EnvctlError (exit 2) for a directory that
    holds anything and is not an earlier export (nothing of the user's is overwritten); in an
    earlier export, the files it wrote that this one does not (node-2.sh of three nodes, another
    format's files) are removed, so the directory never mixes two exports."""
    earlier = _earlier_export(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    marker = "\n".join([format_name, *sorted(files)]) + "\n"
    for name, text in sorted({**files, MARKER: marker}.items()):
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
        if name.endswith(".sh"):  # scripts a user or sbatch starts
            path.chmod(0o755)
        written.append(path)
    for name in sorted(earlier - set(files)):
        (directory / name).unlink(missing_ok=True)
    return written


def _earlier_export(directory: Path) -> set[str]:
    """The files an earlier export wrote in `directory` (its marker's list), or an empty set for a
    new or empty directory. Raises EnvctlError (exit 2) for one that is not a directory, or holds
    files and no marker."""
    if not directory.exists():
        return set()
    if not directory.is_dir():
        raise EnvctlError(f"-o {directory}: not a directory", exit_code=EXIT_USAGE)
    marker = directory / MARKER
    if not marker.is_file():
        if any(directory.iterdir()):
            raise EnvctlError(f"-o {directory}: the directory holds files and is not an earlier export; nothing "
                              "written", hint="give a new or empty directory", exit_code=EXIT_USAGE)
        return set()
    names = marker.read_text(encoding="utf-8").split("\n")[1:]
    # Only plain names the export itself writes: a marker edited to name ../x removes nothing outside.
    return {n for n in names if n and "/" not in n and n not in (".", "..", MARKER)}


def render(export: Export, fmt) -> dict[str, str]:
    """Every file of `export` in format `fmt` (envctl.export.formats.Format), README.md included."""
    from envctl.export.readme import render as readme

    files = dict(fmt.write(export))
    files["README.md"] = readme(export, fmt.name, list(fmt.how_to_run(export)))
    return files
