# envctl-standin: a `deepspeed` with nothing but its per-node launcher module, so that
# `python -m deepspeed.launcher.launch` works in the stand-in vendor images.
__version__ = "0.0.0+standin"
