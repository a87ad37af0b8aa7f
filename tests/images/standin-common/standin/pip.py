"""`pip` / `pip3` / `python -m pip`: record the call, install nothing, but fail as pip fails
when what it is asked to install from is not there.

What is checked: a requirements file (-r) exists, and its active lines are recorded, so the
effect of edits such as the tutorials' `sed 's/torch/# torch/' requirements.txt` is visible;
a local project (`.`, `-e DIR`, `DIR[extras]`) has a setup.py or pyproject.toml; a wheel file
exists and is a wheel (a zip with a .dist-info/METADATA). Names from an index are only recorded.
"""

from __future__ import annotations

import os
import re
import sys
import zipfile

from standin import record

_TAKES_VALUE = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "-c", "--constraint", "-t", "--target",
                "--prefix", "--root", "--src", "--python-version", "--platform", "--implementation", "--abi"}


def _local(spec: str) -> bool:
    path = re.sub(r"\[.*\]$", "", spec)
    return path in (".", "..") or path.startswith(("/", "./", "../")) or path.endswith((".whl", ".tar.gz", ".zip"))


def _project_problem(spec: str) -> str | None:
    path = re.sub(r"\[.*\]$", "", spec)
    if path.endswith(".whl"):
        if not os.path.isfile(path):
            return f"Could not find the wheel {path}"
        try:
            with zipfile.ZipFile(path) as wheel:
                if not any(n.endswith(".dist-info/METADATA") for n in wheel.namelist()):
                    return f"{path} is not a valid wheel (no .dist-info/METADATA)"
        except zipfile.BadZipFile:
            return f"{path} is not a valid wheel (not a zip file)"
        return None
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, f)) for f in ("setup.py", "pyproject.toml")):
            return f"Directory {os.path.abspath(path)!r} is not installable. Neither 'setup.py' nor 'pyproject.toml' found."
        return None
    if not os.path.exists(path):
        return f"Invalid requirement or missing file: {path!r}"
    return None


def _active_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]


def main(args: list[str], program: str = "pip") -> None:
    problems: list[str] = []
    requirements: dict[str, list[str]] = {}
    if args[:1] == ["install"]:
        rest = args[1:]
        i = 0
        while i < len(rest):
            arg = rest[i]
            if arg in ("-r", "--requirement") and i + 1 < len(rest):
                path = rest[i + 1]
                if os.path.isfile(path):
                    requirements[path] = _active_lines(path)
                else:
                    problems.append(f"Could not open requirements file: [Errno 2] No such file or directory: {path!r}")
                i += 2
            elif arg in ("-e", "--editable") and i + 1 < len(rest):
                problem = _project_problem(rest[i + 1])
                problems += [problem] if problem else []
                i += 2
            elif arg in _TAKES_VALUE:
                i += 2
            elif arg.startswith("-"):
                i += 1
            else:
                if _local(arg):
                    problem = _project_problem(arg)
                    problems += [problem] if problem else []
                i += 1
    extra = {"requirements": requirements} if requirements else {}
    record.record("pip", [*program.split(), *args], **extra, **({"problems": problems} if problems else {}))
    if problems:
        for problem in problems:
            print(f"ERROR: {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"[stand-in] {program} {' '.join(args)}: recorded, nothing installed")
    sys.exit(0)
