"""Plans and manifests as text a person reads, or JSON a program reads. Secrets never appear."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from typing import Any, Iterable

from envctl.cards import cards_text
from envctl.masking import MASK, mask
from envctl.plan import Plan
from envctl.summary import size_text, summary, summary_lines

REDACTED = MASK


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with the secret values masked as values, not as substrings of other words
    (envctl/masking.py: `HF_TOKEN=x` leaves `examples` alone)."""
    return mask(text, secrets)


def redact_tree(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact_tree(k, secrets): redact_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(v, secrets) for v in value]
    return value


def plan_json(plan: Plan) -> str:
    data = {"summary": summary(plan), **asdict(plan)}
    data.pop("secrets", None)
    data.pop("workspace_mark", None)  # how up tells its workspaces apart, not a decision
    data["container"]["labels"] = plan.container.labels()
    data["container"]["config_hash"] = plan.container.config_hash()
    data["container"]["create_args"] = plan.container.cli_args()
    data["ready"] = plan.ready
    if data["image"].get("mirror_from") is None:  # as for artifacts below: only where a mirror applies
        data["image"].pop("mirror_from", None)
    for artifact in data["artifacts"]:  # mirror keys only where a mirror applies (envctl.mirror_routes)
        if artifact.get("mirror") is None:
            artifact.pop("mirror", None)
            artifact.pop("mirror_from", None)
    return json.dumps(redact_tree(data, plan.secrets), indent=2, ensure_ascii=False)


def _command_lines(argv: tuple[str, ...], indent: str) -> list[str]:
    """A command as a person reads it; a multi-line script is shown as a block, not as one
    quoted argument (the JSON form keeps the exact argument list)."""
    if argv and "\n" in argv[-1]:
        lines = [f"{indent}$ {shlex.join(argv[:-1])} SCRIPT, where SCRIPT is:"]
        return lines + [f"{indent}  | {line}" for line in argv[-1].rstrip("\n").splitlines()]
    return [f"{indent}$ {shlex.join(argv)}"]


def _driver_line(plan: Plan) -> str:
    d = plan.driver
    if d.status == "not-required":
        return "no driver requirement"
    found = f"v{d.found} from {d.source}" if d.found else f"not found ({d.source})"
    return f"{d.kind} driver {d.required}: {found} → {d.status}"


def _image_lines(plan: Plan) -> list[str]:
    i = plan.image
    pinned = f" (pinned {i.expected_id})" if i.expected_id else ""
    lines = [f"{i.ref}{pinned}", f"→ {i.action}: {i.reason}"]
    if plan.baked:
        lines.append(f"baked image {plan.baked} is used: the setup steps are already inside")
    if i.origin == "build":
        lines.append(f"build context {i.source}")
    elif i.origin == "tarball":
        if i.source:
            digest = f", sha256 {i.sha256}" if i.sha256 else ", sha256 not pinned yet (envctl lock)"
            lines.append(f"tarball {i.source}{digest}")
        else:
            lines.append(f"tarball to be provided: {i.obtain}")
    elif i.origin == "pull":
        from envctl.registry_plan import pull_lines

        lines.extend(pull_lines(i))
    else:
        lines.append("no tarball or build given: it must already be on the engine")
    return lines


def _serving_line(e) -> str | None:
    """How a server entrypoint (envctl.plan.Entrypoint) runs in the background: when `exec
    --detach` returns (its `ready:`), or that it declares no readiness; None for one that serves
    no port and declares none."""
    if e.ready is not None:
        return (f"ready when {e.ready.describe()}, within {e.ready.timeout:g} s: "
                f"envctl exec {e.name} --detach (envctl stop {e.name} ends it)")
    if e.ports and not e.interactive:
        return (f"declares no readiness (ready: in the manifest): envctl exec {e.name} --detach returns "
                f"once it has started, not once it answers")
    return None


def plan_text(plan: Plan) -> str:
    out: list[str] = []
    add = out.append
    variant = f" (variant {plan.variant})" if plan.variant else ""
    given = plan.container.vars
    variant += " with " + " ".join(f"--var {k}={v}" for k, v in given.items()) if given else ""
    root = f", host root {plan.host_root}" if plan.host_root != "/" else ""
    add(f"plan: {plan.manifest}{variant} on {plan.host}{root}")
    out.extend(summary_lines(plan))
    add("")
    add(f"manifest: {plan.manifest_file}")
    add("")
    add(f"1. driver      {_driver_line(plan)}")
    dev = plan.devices
    cards = cards_text(dev.cards) or "none"
    add(f"2. devices     {dev.kind} cards {cards}")
    if dev.why:
        add(f"                 why    {dev.why}")
    for n in dev.nodes:
        add(f"                 device {n.host_path} → {n.container_path}")
    for m in dev.mounts:
        add(f"                 mount  {m.source} → {m.target} ({'ro' if m.read_only else 'rw'})")
    for k, v in dev.env.items():
        add(f"                 env    {k}={v}")
    image = _image_lines(plan)
    add(f"3. image       {image[0]}")
    for line in image[1:]:
        add(f"                 {line}")
    add(f"4. artifacts   {len(plan.artifacts)}")
    for a in plan.artifacts:
        moved = f" ({size_text(a.bytes)})" if a.action not in ("cached", "missing") else ""
        add(f"   {a.name}  → {a.action}{moved}: {a.reason}")
        add(f"                 source {a.source or 'to be provided: ' + (a.obtain or '')}")
        if a.mirror:
            add(f"                 mirror {a.mirror}  (from {a.mirror_from})")
        if a.subpath:
            add(f"                 subpath {a.subpath}")
        if a.include:
            add(f"                 include {', '.join(a.include)}")
        if a.sha256:
            add(f"                 sha256 {a.sha256}")
        if a.cache_path:
            add(f"                 cache  {a.cache_path}")
        how = "read-only" if a.mode == "ro" else f"writable copy at {a.host_path}"
        add(f"                 → {a.target} ({how}{', extracted' if a.extract else ''})")
    add(f"5. container   {plan.container.name}  (config {plan.container.config_hash()[:12]})")
    add(f"                 → {plan.container_action.action}: {plan.container_action.reason}")
    for run in plan.container_action.stops:  # accepted with --force
        add(f"                 kills (--force): {run.describe()}")
    args = plan.container.cli_args()
    add("     " + shlex.join(args[:4]) + " \\")
    i = 4
    while i < len(args):
        if args[i].startswith("--") and i + 1 < len(args) and args[i] not in ("--privileged",):
            add(f"       {shlex.join(args[i:i + 2])} \\")
            i += 2
        else:
            add(f"       {shlex.join(args[i:])}")
            break
    if plan.passed:  # names only: the values never enter a plan
        add("     passed to setup steps and entrypoints at run time only (not in the container's configuration):")
        for variable in plan.passed:
            add(f"       {variable.describe()}")
    add(f"6. setup       {len(plan.setup)} step(s), each re-run only when it or a step before it changes")
    for s in plan.setup:
        add(f"   [{s.index + 1}] {s.name}  (step {s.step_hash[:12]})  → {s.action}: {s.reason}")
        if s.workdir:
            add(f"         in {s.workdir}")
        for k, v in s.env.items():
            add(f"         env {k}={v}")
        if s.uses:
            add(f"         uses {', '.join(s.uses)}")
        out.extend(_command_lines(s.argv, "         "))
    add(f"7. entrypoints {len(plan.entrypoints)}: envctl exec NAME [--set key=value]")
    for e in plan.entrypoints:
        extra = []
        if e.cards:
            extra.append(f"cards {cards_text(e.cards)}")
        if e.ports:
            extra.append(f"serves :{', :'.join(map(str, e.ports))}")
        if e.interactive:
            extra.append("interactive")
        add(f"   {e.name}" + (f"  ({'; '.join(extra)})" if extra else "") + (f" — {e.description}" if e.description else ""))
        if e.problem:
            add(f"         cannot run here: {e.problem}")
        served = _serving_line(e)
        if served:
            add(f"         {served}")
        if e.workdir:
            add(f"         in {e.workdir}")
        for k, v in e.env.items():
            add(f"         env {k}={v}")
        out.extend(_command_lines(e.argv, "         "))
    for title, items in (("needs (provide these before up)", plan.needs), ("blockers (up stops here)", plan.blockers), ("notes", plan.notes)):
        if items:
            add("")
            add(f"{title}:")
            for item in items:
                add(f"  - {item}")
    add("")
    if plan.blockers or plan.needs:
        said = [f"{len(plan.blockers)} blocker(s)"] if plan.blockers else []
        said += [f"{len(plan.needs)} thing(s) to provide (needs)"] if plan.needs else []
        add(f"not ready: {' and '.join(said)}" + ("" if plan.world.engine else "; the engine could not be asked either"))
    elif not plan.world.engine:  # "ready" would be a promise the plan cannot make: up needs the engine
        add("undecided: the engine could not be asked, so the image, the container and the setup steps are unknown; "
            "up needs the engine")
    else:
        add("ready: up can proceed")
    return redact("\n".join(out), plan.secrets) + "\n"
