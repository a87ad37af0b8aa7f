# envctl-standin: a `torch` with nothing but a version and the distributed launchers, so that
# `import torch` and `python -m torch.distributed.launch` work in the stand-in vendor images.
__version__ = "0.0.0+standin"
