"""What a network is: activations (registered by name) and architectures (built-in nets, a user's
factory, and the list of layers with their fans, roles and positions).

May import :mod:`initbench.core` only.
"""
