"""Stochastic optimisers updating a list of parameter arrays in place, all in one call."""

import numpy as np

__all__ = ["SGD", "Adam", "clip_global_norm"]


class SGD:
    """Stochastic gradient descent with (heavy-ball) momentum: v = m v - lr g; p += v.

    Parameters
    ----------
    params : list of ndarray
        The arrays to update in place.
    learning_rate : float
    momentum : float
    """

    def __init__(self, params, learning_rate, momentum):
        self.learning_rate, self.momentum = learning_rate, momentum
        self.velocities = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        """Apply one update to every array of ``params`` from ``grads``."""
        for p, g, v in zip(params, grads, self.velocities):
            v *= self.momentum
            v -= self.learning_rate * g
            p += v


class Adam:
    """Adam (Kingma & Ba, 2014) with bias correction folded into the step size.

    Parameters
    ----------
    params : list of ndarray
    learning_rate, beta_1, beta_2, epsilon : float
    """

    def __init__(self, params, learning_rate, beta_1, beta_2, epsilon):
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = (
            learning_rate, beta_1, beta_2, epsilon)
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        """Apply one update to every array of ``params`` from ``grads``."""
        self.t += 1
        lr = (self.learning_rate * np.sqrt(1 - self.beta_2 ** self.t)
              / (1 - self.beta_1 ** self.t))
        for p, g, m, v in zip(params, grads, self.ms, self.vs):
            m *= self.beta_1
            m += (1 - self.beta_1) * g
            v *= self.beta_2
            v += (1 - self.beta_2) * (g * g)
            p -= (lr * m / (np.sqrt(v) + self.epsilon)).astype(p.dtype, copy=False)


def clip_global_norm(grads, max_norm):
    """Scale every gradient in place so that their joint L2 norm is at most ``max_norm``.

    Returns the norm before clipping.
    """
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))
    if max_norm is not None and norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for g in grads:
            g *= scale
    return norm
