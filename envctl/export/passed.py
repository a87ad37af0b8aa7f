"""`container.pass_env` in an export: each passed variable reaches the node's command at run time,
and its value is in no exported file (the export never even reads it).

- Kubernetes formats: `env: [{name: HF_TOKEN, valueFrom: {secretKeyRef: {name: <job>-secrets,
  key: HF_TOKEN}}}]`, the Secret the export's README tells how to create (`kubectl create secret
  generic <job>-secrets --from-literal=HF_TOKEN="$HF_TOKEN"` or `--from-env-file=FILE`; kubectl's
  --from-env-file reads "lines of key=val pairs ... (i.e. a Docker .env file)", kubectl create
  secret generic --help, the format of container.env_file). A Secret or key that is missing
  keeps the pod from starting (the kubelet's CreateContainerConfigError names it): the pod spec
  does not mark the reference optional, because a job that needs a token should not run for
  hours without it; the README says so.
- slurm and shell: `docker exec -e NAME` / `docker run -e NAME`, which take the value from the
  environment of the docker client (the Docker CLI drops a bare NAME that is not set there). For
  Slurm that is the task's environment: sbatch hands the submitter's environment to the job
  (`--export=ALL`, its default, sbatch(1)) and srun hands the batch script's to each task. A
  name not set where a node starts is a warning in that node's output, and the command runs
  without it, as `envctl up`/`exec` warn and go on. `ENVCTL_ENV_FILE=FILE` (a file each node
  can read, in Docker's env-file format: container.env_file's) becomes `--env-file FILE`; the
  environment wins over it, as for `envctl exec` (the CLI applies -e after --env-file).
  Slurm's `docker exec` into the container `envctl up` made keeps the values out of its
  configuration; the shell format's `docker run --rm` container holds them in its configuration
  while it runs (its README says so) and is removed with them.
"""

from __future__ import annotations

from envctl.export.model import Export

ENV_FILE_VARIABLE = "ENVCTL_ENV_FILE"


def secret_name(export: Export) -> str:
    """The Secret every Kubernetes format reads secrets from: `<job>-secrets` (a DNS subdomain:
    the job name is a DNS-1035 label of at most 40 characters)."""
    return f"{export.job}-secrets"


def names(export: Export) -> tuple[str, ...]:
    """The names the pods read from the Secret: values that hold a secret (model.secret_env)
    and container.pass_env, each once, in that order."""
    secret_env = tuple(export.extra.get("secret_env", ()))
    return secret_env + tuple(n for n in export.passed if n not in secret_env)


def kubernetes_env(export: Export) -> list[dict]:
    """The container's `env` entries for names(export), each from the Secret."""
    return [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name(export), "key": key}}}
            for key in names(export)]


def prerequisites(export: Export, format_name: str) -> list[str]:
    """README lines (node prerequisites) for container.pass_env in `format_name`."""
    if not export.passed:
        return []
    # The values that hold a secret (model.secret_env) go the same way; this line names them too.
    listed = ", ".join(names(export)) + (" (container.pass_env, and values holding a secret)"
                                         if export.extra.get("secret_env") else " (container.pass_env)")
    env_file = export.extra.get("env_file")
    if format_name not in ("slurm", "shell"):
        literals = " ".join(f'--from-literal={key}="${key}"' for key in names(export))
        line = (f"the Secret {secret_name(export)} holding {', '.join(names(export))} (container.pass_env: each pod "
                "reads them when it starts, through secretKeyRef; no exported file holds a value): "
                f"`kubectl create secret generic {secret_name(export)} {literals}` in a shell where they are set, or "
                f"`kubectl create secret generic {secret_name(export)} --from-env-file=FILE`, which keeps the values "
                "off kubectl's command line (kubectl reads Docker's env-file format, as container.env_file is written, "
                "and stores every name of the file)")
        if env_file:
            line += f"; the manifest's env_file is {env_file}"
        line += (". A new value: the same command with `--dry-run=client -o yaml | kubectl apply -f -`; pods started "
                 "afterwards get it. A pod whose Secret or key is missing does not start (the kubelet's "
                 "CreateContainerConfigError names it): unlike `envctl up`, which warns and goes on, a job does not "
                 "run for hours without its token")
        return [line]
    where = ("the environment `sbatch` runs in: sbatch hands it to the job (--export=ALL, its default; a site's "
             "SBATCH_EXPORT or `--export=NONE` drops it) and srun to every task; Slurm keeps a batch job's environment "
             "with the job (and in its accounting database where AccountingStoreFlags has job_env), so where that "
             f"is not wanted, use {ENV_FILE_VARIABLE}" if format_name == "slurm" else
             "the environment each node's script runs in")
    line = (f"{listed} set in {where}; each node gives them to the command with `docker "
            f"{'exec' if format_name == 'slurm' else 'run'} -e NAME`, which takes the value from its own environment "
            f"(never a command line or a file of the export). Or {ENV_FILE_VARIABLE}=FILE: a file in Docker's env-file "
            "format (NAME=VALUE lines, as container.env_file) that every node can read at that path, passed as "
            "`--env-file` (the environment wins; unlike envctl, docker passes every name of the file)")
    if env_file:
        line += f"; the manifest's env_file is {env_file}"
    if format_name == "shell":
        # docker run puts -e values in the container's configuration; this container lives for the
        # run only (--rm), unlike the one envctl up keeps, where docker exec passes them instead.
        line += (". The script's container exists for the run only (`docker run --rm`): while it runs, `docker "
                 "inspect` on that server shows the values, as it shows any docker run -e; they go with it")
    line += (". A name set in neither is a warning in the node's output and the command runs without it, as "
             "`envctl up` and `exec` warn and go on")
    return [line]


def docker_options(export: Export) -> list[str]:
    """`docker exec`/`docker run` options (one per line) passing the pass_env names from the
    client's environment, after the env file that ENVCTL_ENV_FILE names when set."""
    if not export.passed:
        return []
    return [f'${{{ENV_FILE_VARIABLE}:+--env-file "${ENV_FILE_VARIABLE}"}}', *[f"-e {name}" for name in export.passed]]


def check_lines(export: Export, exit_command: str = "exit") -> list[str]:
    """sh lines, run where a node starts: refuse an ENVCTL_ENV_FILE that cannot be read (exit 2),
    and warn for each pass_env name set neither in the environment nor in that file."""
    if not export.passed:
        return []
    lines = [
        f'if [ -n "${{{ENV_FILE_VARIABLE}:-}}" ] && [ ! -r "${ENV_FILE_VARIABLE}" ]; then',
        f'  echo "envctl: $(hostname): cannot read {ENV_FILE_VARIABLE}=${ENV_FILE_VARIABLE}" >&2',
        f"  {exit_command} 2",
        "fi",
    ]
    for name in export.passed:  # shell names (the manifest's model checks them): safe to write as they are
        lines += [
            f'if [ -z "${{{name}+x}}" ] && ! {{ [ -n "${{{ENV_FILE_VARIABLE}:-}}" ] && '
            f'grep -Eq "^[[:space:]]*{name}(=|\\$)" "${ENV_FILE_VARIABLE}"; }}; then',
            f'  echo "envctl: warning: $(hostname): {name} (container.pass_env) is not set: export it where this job '
            f'is started, or give {ENV_FILE_VARIABLE}=FILE; the command runs without it" >&2',
            "fi",
        ]
    return lines
