"""Saved plans: `envctl plan NAME -o plan.json` writes the plan a person reviews; `envctl up
--plan plan.json` applies exactly that plan, or refuses and names what changed since.

The model is terraform's `plan -out` → `apply FILE`: the file holds what was decided, and
applying it first computes the plan afresh (the same manifest file, variant and options,
observed now) and compares. Equal: the fresh plan — the same decisions — is executed. Not
equal: nothing is done, and each difference is named by its place in the plan (e.g.
`container_action.action: unchanged → recreate`, `world.container_id: … → absent`).
Secrets never reach the file (the plan's JSON form redacts them).
"""

from __future__ import annotations

import json
from pathlib import Path

from envctl.errors import EXIT_USAGE, EnvctlError

FORMAT = "envctl-plan/1"


class PlanChanged(EnvctlError):
    exit_code = 5  # the host (or the manifest) is not what the plan was made for


def document(plans: dict[str, dict], manifest_file: str, variant: str | None, cards, skip_driver_check: bool,
             share_cards: bool = False, vars: dict[str, str] | None = None) -> dict:
    """`plans`: host name → the plan's JSON form (render.plan_json, parsed). `cards`: indices,
    a count (--card-count: the free cards chosen are in each host's plan), or None. `vars`: the
    --var values (name → text) the manifest was resolved with; written only when there are any."""
    kept = None if cards is None else cards if isinstance(cards, int) else list(cards)
    doc = {"format": FORMAT, "manifest_file": manifest_file, "variant": variant,
           "options": {"cards": kept, "skip_driver_check": skip_driver_check, "share_cards": share_cards},
           "plans": plans}
    if vars:
        doc["vars"] = dict(vars)
    return doc


def write(path: Path, doc: dict) -> None:
    from envctl.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def read(path: Path) -> dict:
    """The saved plan; raises EnvctlError (exit 2) for a file that is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EnvctlError(f"cannot read the plan file {path}: {exc.strerror}", exit_code=EXIT_USAGE) from None
    except ValueError as exc:
        raise EnvctlError(f"{path} is not a saved plan (not JSON: {exc})", exit_code=EXIT_USAGE) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EnvctlError(f"{path} is not a saved plan (no \"format\": \"{FORMAT}\")",
                          hint="write one with `envctl plan NAME -o FILE`", exit_code=EXIT_USAGE)
    wrong = _malformed(doc)
    if wrong:
        raise EnvctlError(f"{path} is not a saved plan as envctl writes it: {wrong}",
                          hint="a saved plan is applied as written: make a new one with `envctl plan NAME -o FILE`",
                          exit_code=EXIT_USAGE)
    return doc


def _malformed(doc: dict) -> str | None:
    """What in a document with the right `format` is not as `document` writes it (a hand edit,
    a truncated copy), or None. Checked before any of it is used: a string where a flag was
    written would otherwise read as true, and a missing key end as an internal error."""
    manifest_file = doc.get("manifest_file")
    if not isinstance(manifest_file, str) or not manifest_file:
        return "\"manifest_file\" must be the manifest's path"
    if doc.get("variant") is not None and not isinstance(doc["variant"], str):
        return "\"variant\" must be a name or null"
    given = doc.get("vars", {})
    if not isinstance(given, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in given.items()):
        return "\"vars\" must be an object of --var values (text)"
    options = doc.get("options")
    if not isinstance(options, dict):
        return "\"options\" must be an object with \"cards\" and \"skip_driver_check\""
    cards = options.get("cards")
    count = isinstance(cards, int) and not isinstance(cards, bool) and cards >= 0
    if cards is not None and not count and not (isinstance(cards, list) and all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cards)):
        return "\"options.cards\" must be a list of card indices, a count or null"
    if not isinstance(options.get("share_cards", False), bool):
        return "\"options.share_cards\" must be true or false"
    if not isinstance(options.get("skip_driver_check"), bool):
        return "\"options.skip_driver_check\" must be true or false"
    plans = doc.get("plans")
    if not isinstance(plans, dict) or not all(isinstance(host, str) and isinstance(plan, dict) for host, plan in plans.items()):
        return "\"plans\" must map each host's name to its plan"
    return None


def differences(saved, fresh, where: str = "") -> list[str]:
    """Each place where two plans' JSON forms differ, as `path: before → after`."""
    if isinstance(saved, dict) and isinstance(fresh, dict):
        out = []
        for key in [*saved, *(k for k in fresh if k not in saved)]:
            out += differences(saved.get(key, "absent"), fresh.get(key, "absent"), f"{where}.{key}" if where else str(key))
        return out
    if isinstance(saved, list) and isinstance(fresh, list) and len(saved) == len(fresh):
        out = []
        for i, (a, b) in enumerate(zip(saved, fresh)):
            out += differences(a, b, f"{where}[{i}]")
        return out
    if saved == fresh:
        return []
    return [f"{where or 'the plan'}: {_short(saved)} → {_short(fresh)}"]


def _short(value) -> str:
    text = "absent" if value is None else json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def check(path: Path, host: str, saved_plan: dict | None, fresh_plan: dict) -> None:
    """Refuse (PlanChanged) unless the fresh plan for `host` equals the saved one."""
    if saved_plan is None:
        raise PlanChanged(f"{path} holds no plan for {host}", hint=f"make one with `envctl plan ... -o {path}` for that host")
    changed = differences(saved_plan, fresh_plan)
    if changed:
        shown = "\n".join(f"- {c}" for c in changed[:15]) + (f"\n- and {len(changed) - 15} more" if len(changed) > 15 else "")
        raise PlanChanged(f"the host or the manifest changed since {path} was made; nothing was done:\n{shown}",
                          hint="review the new plan (`envctl plan ... -o FILE`) and apply that one")
