"""envctl: reproducible large-model environments on Cambricon MLU and Huawei Ascend servers."""

__version__ = "0.1.0"
