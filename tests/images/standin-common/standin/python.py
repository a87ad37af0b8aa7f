"""`python` / `python3`: record the call, then decide what really runs.

- `python -c CODE` and a bare `python` run for real and are not recorded: inline code is the
  manifest's own (shown in its plan), and web.sh polls with it once a second.
- `python -m pip ...` is the pip stand-in.
- `python -m MODULE` runs for real: the modules the manifests launch this way (torch.distributed.launch,
  fastchat.serve.*) are stand-ins, in the image or in the test's upstream fixtures.
- `python SCRIPT`: a stand-in script (the text "envctl-standin" in its first lines) runs for real,
  e.g. the port tool or a fixture's train script that writes the checkpoint a later step lists;
  any other script (our manifests' own convert.py, predict.py, ...) needs the real framework, so
  it is recorded and not run. A missing script fails as Python fails: exit 2.
"""

from __future__ import annotations

import os
import sys

from standin import pip, record

MARKER = b"envctl-standin"
_OPTIONS_WITH_VALUE = {"-W", "-X", "-Q"}


def classify(args: list[str]) -> tuple[str, str | None, int]:
    """(mode, target, index of the target) where mode is code | module | script | repl."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-c":
            return "code", None, i
        if arg == "-m":
            return ("module", args[i + 1], i + 1) if i + 1 < len(args) else ("repl", None, i)
        if arg in _OPTIONS_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            i += 1
            continue
        return "script", arg, i
    return "repl", None, i


def is_standin(path: str) -> bool:
    with open(path, "rb") as handle:
        return MARKER in handle.read(4096)


def main(real: str) -> None:
    args = sys.argv[1:]
    program = os.path.basename(sys.argv[0])
    mode, target, index = classify(args)
    if mode == "module" and target == "pip":
        pip.main(args[index + 1:], program=f"{program} -m pip")
    if mode in ("code", "repl"):
        os.execv(real, [real, *args])
    if mode == "script" and not os.path.isfile(target):
        record.record(program, [program, *args], ran=False)
        print(f"{program}: can't open file {os.path.abspath(target)!r}: [Errno 2] No such file or directory", file=sys.stderr)
        sys.exit(2)
    runs = mode == "module" or is_standin(target)
    seq = record.record(program, [program, *args], ran=runs)
    if not runs:
        print(f"[stand-in] {program} {target}: recorded, not run (it needs the real framework)", file=sys.stderr)
        sys.exit(0)
    if seq is not None:
        # A launcher module started here tells its workers which call started them.
        os.environ["STANDIN_SEQ"] = str(seq)
    os.execv(real, [real, *args])
