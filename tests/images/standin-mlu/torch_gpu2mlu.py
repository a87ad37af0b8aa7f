"""envctl-standin: Cambricon's GPU-to-MLU port tool, as its user guide describes its use.

    python torch_gpu2mlu.py -i DIR [-o OUT]

copies DIR to OUT (default: DIR_mlu beside DIR, a trailing slash of DIR ignored), replaces the
CUDA names in the copied Python files with their MLU ones (cuda → mlu, nccl → cncl), writes
OUT/report.md listing every changed line, and prints where the original scripts, the ported
scripts and the report are. This is our own small program with that contract, written so that
the setup steps after it find a real DIR_mlu; the vendor's tool rewrites more than these names.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

REPLACEMENTS = (("cuda", "mlu"), ("CUDA", "MLU"), ("nccl", "cncl"), ("NCCL", "CNCL"))


def port_file(path: str) -> list[tuple[int, str, str]]:
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        lines = handle.readlines()
    changed = []
    for number, line in enumerate(lines, 1):
        new = line
        for old, replacement in REPLACEMENTS:
            new = new.replace(old, replacement)
        if new != line:
            changed.append((number, line.rstrip("\n"), new.rstrip("\n")))
            lines[number - 1] = new
    if changed:
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.writelines(lines)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description="port PyTorch GPU scripts to MLU (envctl stand-in)")
    parser.add_argument("-i", "--input", required=True, help="directory (or file) of the GPU scripts")
    parser.add_argument("-o", "--output", help="where to write the ported copy (default: INPUT_mlu)")
    args = parser.parse_args()
    source = os.path.abspath(args.input.rstrip("/") or "/")
    if not os.path.exists(source):
        print(f"torch_gpu2mlu: {args.input} does not exist", file=sys.stderr)
        return 1
    target = os.path.abspath(args.output) if args.output else source + "_mlu"
    if os.path.isdir(source):
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        files = [os.path.join(d, f) for d, _, names in os.walk(target) for f in sorted(names) if f.endswith(".py")]
    else:
        target = os.path.splitext(target)[0] + ".py" if not args.output else target
        shutil.copyfile(source, target)
        files = [target]
    report = [f"# Port report: {source} -> {target}", "", "| file | line | original | ported |", "|---|---|---|---|"]
    total = 0
    for path in sorted(files):
        for number, old, new in port_file(path):
            total += 1
            report.append(f"| {os.path.relpath(path, target)} | {number} | `{old.strip()}` | `{new.strip()}` |")
    report_path = os.path.join(target if os.path.isdir(target) else os.path.dirname(target), "report.md")
    with open(report_path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(report) + "\n")
    print("# torch_gpu2mlu (envctl stand-in)")
    print(f"Original PyTorch scripts:  {source}")
    print(f"Ported MLU scripts:        {target}")
    print(f"Report ({total} line(s) changed in {len(files)} Python file(s)):  {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
