"""Shell lines that start envctl's prelude in a container on a Docker host, for the formats whose
nodes are servers with a Docker engine rather than pods (`slurm`, `shell`).

On such a node the prelude's files reach the container through the node's own docker CLI
(`docker exec -i ... cat > FILE` from here-documents in the script: nothing but the script has
to be copied to the node), the node's command starts with a marker in its environment (ENVCTL_EXPORT_TASK), and a signal
to the script is passed on to every process in the container that holds the marker and to their
descendants (envctl.multinode.stopping's sweep, which reaches a launcher's re-parented workers
too), because killing a `docker exec` client does not stop what it started in the container.
"""

from __future__ import annotations

import shlex

from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.export import passed
from envctl.export.model import Export
from envctl.manifest.model import variant_slug
from envctl.multinode.stopping import SWEEP
from envctl.plan import _command

FILE_END = "ENVCTL_EXPORT_FILE"  # the here-documents' delimiter
# The prelude through the manifest's shell (so a vendor virtualenv or CANN's set_env.sh applies),
# found beside the spec that ENVCTL_EXPORT_SPEC names.
# The sweep of `exec --nodes`, finding processes by this marker instead of ENVCTL_RUN_ID (which
# the prelude only draws later): $1 the signal, $2 the marker's value.
TASK_SWEEP = SWEEP.replace('"ENVCTL_RUN_ID=$run"', '"ENVCTL_EXPORT_TASK=$run"')
assert TASK_SWEEP != SWEEP, "envctl.multinode.stopping.SWEEP no longer matches ENVCTL_RUN_ID=$run"
PRELUDE_LINE = 'exec "$(command -v python3 || command -v python)" "${ENVCTL_EXPORT_SPEC%/*}/prelude.py"'


def refuse_claim(export: Export, format_name: str) -> None:
    """A PersistentVolumeClaim exists only on Kubernetes. Raises EnvctlError (exit 2)."""
    if export.claim:
        raise EnvctlError(f"--pvc {export.claim}: format {format_name} runs on servers, which have no "
                          "PersistentVolumeClaims", hint="leave out --pvc; the artifacts come from envctl's "
                          "directory on each node (--data-dir)", exit_code=EXIT_USAGE)


def container_name(export: Export) -> str:
    """The container `envctl up` makes for the manifest (its ENVCTL_ENV)."""
    return export.env.get("ENVCTL_ENV") or f"envctl-{export.manifest}" + (f"-{variant_slug(export.variant)}" if export.variant else "")


def put_files(files: dict[str, str], container: str, directory: str) -> list[str]:
    """Lines writing each file into `directory` of the running container `container` (both shell
    expressions, e.g. "$envctl_container"), each from a quoted here-document (no expansion)."""
    lines = [f'docker exec {container} mkdir -p {directory}']
    for name, text in sorted(files.items()):
        if FILE_END in text.splitlines():
            raise ValueError(f"{name} holds the here-document delimiter {FILE_END}")
        body = text if text.endswith("\n") else text + "\n"
        lines.append(f"docker exec -i {container} sh -c 'cat > \"$0\"' {directory}/{shlex.quote(name)} <<'{FILE_END}'")
        lines += body.rstrip("\n").split("\n")
        lines.append(FILE_END)
    return lines


def env_options(export: Export) -> list[str]:
    """`-e NAME=value` for the entrypoint's variables (the manifest's container env, its params,
    --set), shell-quoted, one per line; `-e NAME` for those holding a secret."""
    options = [f"-e {shlex.quote(f'{key}={value}')}" for key, value in sorted(export.env.items())]
    # A value holding a secret is never written into the script: `-e NAME` alone makes docker take
    # it from the script's environment (for Slurm, the submitter's, which srun hands every task);
    # container.pass_env likewise, after ENVCTL_ENV_FILE's --env-file (envctl.export.passed).
    secret_env = sorted(set(export.extra.get("secret_env", ())) - set(export.passed))
    return options + [f"-e {shlex.quote(name)}" for name in secret_env] + passed.docker_options(export)


def start_and_forward(export: Export, container: str, directory: str, task: str, dynamic_env: list[str]) -> list[str]:
    """Lines that start the prelude in the container in the background, marked with
    ENVCTL_EXPORT_TASK=`task` (a shell expression unique to this node's run), pass INT and TERM
    on to every process holding the mark and their descendants, and leave the exit code in
    $envctl_code. `dynamic_env`: further `-e` options holding shell expressions (the rank, the
    master)."""
    prelude = _command(PRELUDE_LINE, list(export.shell))
    options = ['-e ENVCTL_EXPORT_SPEC="$envctl_dir/node.json"', '-e ENVCTL_EXPORT_TASK="$envctl_task"', *dynamic_env,
               *env_options(export)]
    start = ["docker exec \\"] + [f"    {option} \\" for option in options]
    start.append(f"    {container} {shlex.join(prelude)} &")
    return [
        f"envctl_dir={directory}",
        f"envctl_task={task}",
        *start,
        "envctl_child=$!",
        "envctl_forward() {  # a docker exec client's death does not stop what it started: signal it in the container",
        f"  docker exec {container} sh -c {shlex.quote(TASK_SWEEP)} sh \"$1\" \"$envctl_task\" >/dev/null 2>&1 || true",
        "}",
        "trap 'envctl_forward TERM' TERM",
        "trap 'envctl_forward INT' INT",
        "envctl_code=0",
        'wait "$envctl_child" || envctl_code=$?',
        'while kill -0 "$envctl_child" 2>/dev/null; do  # a signal interrupted the wait: wait for the end',
        '  envctl_code=0; wait "$envctl_child" || envctl_code=$?',
        "done",
        "trap - TERM INT",
    ]


def running_check(reference: str, exit_command: str = "exit") -> list[str]:
    """Lines that stop with `exit_command 5` when the container "$envctl_container" is not
    running here."""
    return [
        "if [ \"$(docker inspect --format '{{.State.Running}}' \"$envctl_container\" 2>/dev/null)\" != true ]; then",
        f"  echo \"envctl: $(hostname): the container $envctl_container is not running; start it with: envctl up "
        f"{reference} --hosts NODES\" >&2",
        f"  {exit_command} 5",
        "fi",
    ]
