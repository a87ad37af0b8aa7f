# envctl-standin: transformers' training_args.py as installed (chatglm2-npu's setup replaces it
# with ModelZoo's fix/training_args.py and keeps this one as training_args.py.orig).
