# envctl-standin: `python -m deepspeed.launcher.launch`, DeepSpeed's per-node launcher: see standin/launchers.py.
import sys

from standin.launchers import deepspeed_launch

if __name__ == "__main__":
    deepspeed_launch(sys.argv[1:])
