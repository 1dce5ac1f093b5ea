"""Where deliveries and attempts are written: every statement (`statements`), and the stores a
worker claims and records through (`stores`, with the group-commit `batcher`)."""
