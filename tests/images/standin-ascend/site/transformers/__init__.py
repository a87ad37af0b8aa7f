# envctl-standin: stands in for the transformers that chatglm2-npu's requirements.txt installs;
# only the file its setup replaces (training_args.py) is here.
__version__ = "0.0.0+standin"
