"""Datasets for training runs: scikit-learn's generators and digits, a teacher net, and ``.npz``
files, registered by name.

May import :mod:`initbench.core` only.
"""
