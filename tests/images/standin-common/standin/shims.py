"""The entry of every shim that make-shim writes: which stand-in a program name stands for."""

from __future__ import annotations

import os
import sys

from standin import deepspeed_runner, launchers, pip, python, record

LAUNCHERS = {
    "torchrun": lambda args: launchers.torch_launch(args, legacy=False),
    "deepspeed": deepspeed_runner.main,
    "msrun": launchers.msrun,
}


def main(name: str, real: str) -> None:
    args = sys.argv[1:]
    if name in ("python", "python3"):
        python.main(real)
    elif name in ("pip", "pip3"):
        pip.main(args, program=os.path.basename(sys.argv[0]))
    elif name in LAUNCHERS:
        seq = record.record(name, [name, *args])
        if seq is not None:
            os.environ["STANDIN_SEQ"] = str(seq)  # its workers say which call started them
        LAUNCHERS[name](args)
    else:
        # Servers and tools whose work needs the real thing (streamlit, ipython): the call is the proof.
        record.record(name, [name, *args])
        print(f"[stand-in] {name} {' '.join(args)}: recorded, not run")
        sys.exit(0)
