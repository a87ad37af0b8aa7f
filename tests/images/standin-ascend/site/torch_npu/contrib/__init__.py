# envctl-standin: torch_npu.contrib.
