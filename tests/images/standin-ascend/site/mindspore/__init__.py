# envctl-standin: MindSpore, only importable. No graph is compiled and no NPU is driven.
__version__ = "0.0.0+standin"
