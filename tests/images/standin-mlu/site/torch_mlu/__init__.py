# envctl-standin: Cambricon's torch_mlu extension, only so that `import torch_mlu` works where the
# SDK image has it (the virtualenv /torch/venv3/pytorch). No MLU is driven.
__version__ = "0.0.0+standin"
