"""The training engine: events, callbacks, the stop request, the Trainer and checkpoints."""
