"""The plan of a manifest on a host, whichever host it is: one observation (probes, engine,
caches, and an SSH host's own cache) and build_plan's decisions. `plan`, `up --dry-run` and `up`
all call this, for this machine and for SSH hosts alike."""

from __future__ import annotations

from envctl import mirror_routes
from envctl.errors import EnvctlError
from envctl.hosts.base import WritableHost
from envctl.manifest.loader import Loaded
from envctl.plan import Options, Plan


def engine_if_any(host: WritableHost):
    """(engine, None) when the host's engine answers, else (None, why): a plan is still shown
    without an engine, saying what it could not decide."""
    try:
        return host.engine(), None
    except EnvctlError as problem:
        return None, f"the engine could not be asked: {problem.message.splitlines()[0]}"


def plan_on(host: WritableHost, loaded: Loaded, options: Options, engine=None, engine_problem: str | None = None,
            holders: bool = True) -> Plan:
    """The plan on `host`, observing `engine` when given (None: no decisions about the image,
    container and setup; `engine_problem` says why). `holders=False`: who holds the cards is
    not read (an environment's own plan for exec and shell, which chooses no cards)."""
    from envctl import runtime_env
    from envctl.artifact_steps import host_copies, host_records
    from envctl.observe import observe
    from envctl.plan import build_plan

    observed = observe(host, loaded, engine, remote_records=host_records(host, loaded), fetch_mode=host.fetch_mode,
                       engine_problem=engine_problem, remote_copies=host_copies(host, loaded), holders=holders)
    # Passed variables come from the caller's environment on this machine, whichever host runs
    # the container: the Docker client that hands them over runs here.
    runtime = runtime_env.for_manifest(loaded, options.env_files, host=host)  # host: its own pip mirror
    return mirror_routes.shown_in_plan(build_plan(loaded, observed, options, host.environ(), runtime), loaded, host)
