"""The few lines a person reads first: what `up` will fetch and how much, what it does to the
image and the container, which setup steps run, and what blocks it. The same facts appear as
`summary` in `--json`, and `planned_actions` lists each step's action for comparison with what
`up` reports it executed."""

from __future__ import annotations

from envctl.decisions import MOVES_BYTES as MOVES  # artifact actions that move bytes
from envctl.plan import Plan


def size_text(n: int | None) -> str:
    if n is None:
        return "size unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def summary(plan: Plan) -> dict:
    moving = [a for a in plan.artifacts if a.action in MOVES]
    known = sum(a.bytes for a in moving if a.bytes is not None)
    unknown = sum(1 for a in moving if a.bytes is None)
    runs = [s for s in plan.setup if s.action == "run"]
    return {
        "artifacts": {"move": [a.name for a in moving], "bytes": known, "of_unknown_size": unknown,
                      "cached": sum(1 for a in plan.artifacts if a.action in ("cached", "copy")),
                      "missing": [a.name for a in plan.artifacts if a.action == "missing"]},
        "image": {"ref": plan.baked or plan.image.ref, "action": plan.image.action, "bytes": plan.image.bytes},
        "container": {"name": plan.container.name, "action": plan.container_action.action,
                      "changes": list(plan.container_action.changes),
                      "kills": [r.describe() for r in plan.container_action.stops]},  # accepted with --force
        "setup": {"run": [s.name for s in runs], "total": len(plan.setup)},
        "blockers": len(plan.blockers),
    }


def summary_lines(plan: Plan) -> list[str]:
    s = summary(plan)
    art = s["artifacts"]
    if art["move"]:
        amount = size_text(art["bytes"]) if art["bytes"] or not art["of_unknown_size"] else ""
        if art["of_unknown_size"]:
            amount = (amount + " + " if amount else "") + f"{art['of_unknown_size']} of unknown size"
        fetch = f"{len(art['move'])} artifact(s), {amount}"
    else:
        fetch = "nothing"
    if art["cached"]:
        fetch += f" ({art['cached']} cached)"
    if art["missing"]:
        fetch += f"; missing: {', '.join(art['missing'])}"
    image = f"{s['image']['ref']}  {s['image']['action']}"
    if s["image"]["action"] in ("load", "download+load", "pull", "pull+push"):
        image += f" ({size_text(s['image']['bytes'])})"
    container = f"{s['container']['name']}  {s['container']['action']}"
    if s["container"]["changes"]:
        container += f" ({'; '.join(s['container']['changes'])})"
    if s["container"]["kills"]:
        container += f", killing {len(s['container']['kills'])} running (--force)"
    ran = s["setup"]["run"]
    named = ran if 0 < len(ran) <= 3 and len(ran) < s["setup"]["total"] else []  # a few among others: say which
    setup = f"{len(ran)} of {s['setup']['total']} step(s) run" + (f": {', '.join(named)}" if named else "")
    if plan.setup and all(st.action == "unknown" for st in plan.setup):
        setup = f"{s['setup']['total']} step(s), unknown which run"
    blockers = f"{s['blockers']}: up stops (see below)" if s["blockers"] else "none"
    lines = [f"  fetch      {fetch}", f"  image      {image}", f"  container  {container}", f"  setup      {setup}",
             f"  blockers   {blockers}"]
    if not plan.world.engine:  # said once here, not only in each unknown step's reason below
        lines.append("  engine     could not be asked: image, container and setup are unknown (the image step says why)")
    return lines


def planned_actions(plan: Plan) -> list[tuple[str, str, str]]:
    """(kind, name, action) for every step, in the order `up` executes them."""
    out = [("artifact", a.name, a.action) for a in plan.artifacts]
    out.append(("image", plan.image.ref, "present" if plan.baked else plan.image.action))
    out.append(("container", plan.container.name, plan.container_action.action))
    out += [("setup", s.name, s.action) for s in plan.setup]
    return out
