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

A format plugs in by registering itself in envctl.export.formats:

    from envctl.export.formats import Format, register

    def write(export: Export) -> dict[str, str]:   # relative file name -> text
        ...

    register(Format("slurm", "an sbatch script ...", write, check=None))

`write` returns every file of the export (envctl.export.files adds the prelude's files and the
README built from envctl.export.readme). `check` (optional) validates a written directory
offline and returns problems (envctl.export.check.Problem); the Kubernetes formats share
envctl.export.check. A format's module is imported by envctl.export.formats.load_all, so the CLI
knows every format without naming them.
"""
