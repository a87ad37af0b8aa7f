# envctl-standin: `python -m torch.distributed.launch` (torch 1.x): see standin/launchers.py.
import sys

from standin.launchers import torch_launch

if __name__ == "__main__":
    torch_launch(sys.argv[1:], legacy=True)
