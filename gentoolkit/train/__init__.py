"""Training: the shared loop, run folders, checkpoints, pickle-free state and torchrun.
"""
