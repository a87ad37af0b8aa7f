# envctl-standin: deepspeed.launcher, only launch.
