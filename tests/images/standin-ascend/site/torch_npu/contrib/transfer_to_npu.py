# envctl-standin: importing the real module redirects torch's CUDA calls to the NPU; here it
# only says it was imported, so a test sees that a script asked for it.
import sys

print("[stand-in] torch_npu.contrib.transfer_to_npu imported", file=sys.stderr)
