# envctl-standin: torch.distributed, only its launchers.
