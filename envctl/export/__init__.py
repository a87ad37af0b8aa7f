"""`envctl export NAME --entrypoint ENTRY --nodes N --format FORMAT -o DIR`: what a cluster engine
runs, from the same multi-node plan `exec --nodes` executes.

The export (envctl.export.model.Export) is format-neutral: per node, the rank-independent command
(the entrypoint's `nodes.run`, or its `run`, through the manifest's shell: exactly what
`exec --nodes` starts in each node's container), the image and how it reaches every node, the
device-plugin resources, host paths (driver, artifacts from envctl's cache on the node, the
workspace), environment, /dev/shm, capabilities, and the node prerequisites an engine cannot
express. Each container starts the prelude (envctl.export.prelude): it maps the engine's own
index and master host name to envctl's contract (envctl.nodes.contract: ENVCTL_*, MASTER_*,
PET_*), waits for the master, then execs the command.

A format plugs in with a module of this package that defines FORMAT (envctl.export.formats
imports every module here and registers each FORMAT, so neither the registry nor the CLI names
formats):

    from envctl.export.formats import Format
    from envctl.export.files import node_spec, prelude_files

    def write(export: Export) -> dict[str, str]:       # relative file name -> text
        spec = node_spec(export, rank_from="SLURM_NODEID", ...)   # where the rank and master are
        return {"job.sh": ..., **prelude_files(spec)}  # or the files inside a ConfigMap

    def how_to_run(export: Export) -> list[str]:       # README lines: submit it, what the engine needs
        ...

    FORMAT = Format("slurm", "an sbatch script ...", write, how_to_run, check=None)

envctl.export.files.render adds README.md (envctl.export.readme: the command, how to run it, every
node prerequisite); write_directory writes the files (each whole; *.sh executable) and the
.envctl-export marker that `export --check DIR` reads the format from. `check` (optional:
(directory, crd files) -> list of envctl.export.check.Problem) validates a written export
offline; the Kubernetes formats share envctl.export.check.
"""
