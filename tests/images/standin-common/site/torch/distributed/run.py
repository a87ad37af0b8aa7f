# envctl-standin: `python -m torch.distributed.run`, the module behind torchrun.
import sys

from standin.launchers import torch_launch

if __name__ == "__main__":
    torch_launch(sys.argv[1:], legacy=False)
