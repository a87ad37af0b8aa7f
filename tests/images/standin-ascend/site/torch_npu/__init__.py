# envctl-standin: Ascend's torch_npu extension, only so that `import torch_npu` works. No NPU is driven.
__version__ = "0.0.0+standin"
