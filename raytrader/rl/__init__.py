"""Reinforcement-learning agents: a gymnasium environment on the project's own simulator,
training with stable-baselines3 and a policy registry (the ``rl`` extra).

Importing this package is light: gymnasium, torch and stable-baselines3 are imported by the
modules that need them (``env``, ``training``, ``registry``'s load and save).
"""
