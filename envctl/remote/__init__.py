"""Remote hosts: which lab servers envctl knows (the inventory) and how commands reach them."""
