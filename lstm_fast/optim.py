"""Stochastic optimisers that own a list of parameter arrays and update them in place."""

import numpy as np

__all__ = ["SGD", "Adam", "make_optimizer", "configure", "clip_global_norm"]


class SGD:
    """Stochastic gradient descent with (heavy-ball) momentum: v = m v - lr g; p += v.

    Parameters
    ----------
    params : list of ndarray
        The arrays to update in place, in the order ``step`` gets their gradients.
    learning_rate, momentum : float
    """

    solver = "sgd"

    def __init__(self, params, learning_rate, momentum):
        self.params = list(params)
        self.learning_rate, self.momentum = learning_rate, momentum
        self.velocities = [np.zeros_like(p) for p in self.params]

    def step(self, grads):
        """Apply one update to every parameter from its gradient in ``grads``."""
        for p, g, v in zip(self.params, grads, self.velocities):
            v *= self.momentum
            v -= self.learning_rate * g
            p += v

    def get_state(self):
        """(scalars, arrays): what the next steps depend on besides the parameters."""
        return {}, {"velocity": self.velocities}


class Adam:
    """Adam (Kingma & Ba, 2014) with bias correction folded into the step size.

    Parameters
    ----------
    params : list of ndarray
        The arrays to update in place, in the order ``step`` gets their gradients.
    learning_rate, beta_1, beta_2, epsilon : float
    """

    solver = "adam"

    def __init__(self, params, learning_rate, beta_1, beta_2, epsilon):
        self.params = list(params)
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = (
            learning_rate, beta_1, beta_2, epsilon)
        self.t = 0
        self.ms = [np.zeros_like(p) for p in self.params]
        self.vs = [np.zeros_like(p) for p in self.params]

    def step(self, grads):
        """Apply one update to every parameter from its gradient in ``grads``."""
        self.t += 1
        lr = (self.learning_rate * np.sqrt(1 - self.beta_2 ** self.t)
              / (1 - self.beta_1 ** self.t))
        for p, g, m, v in zip(self.params, grads, self.ms, self.vs):
            m *= self.beta_1
            m += (1 - self.beta_1) * g
            v *= self.beta_2
            v += (1 - self.beta_2) * (g * g)
            p -= (lr * m / (np.sqrt(v) + self.epsilon)).astype(p.dtype, copy=False)

    def get_state(self):
        """(scalars, arrays): what the next steps depend on besides the parameters."""
        return {"t": self.t}, {"m": self.ms, "v": self.vs}


_SOLVERS = {"sgd": (SGD, ("learning_rate", "momentum")),
            "adam": (Adam, ("learning_rate", "beta_1", "beta_2", "epsilon"))}


def make_optimizer(solver, params, settings, state=None):
    """The ``solver``'s optimiser over ``params`` with ``settings`` (a dict holding at least its
    hyper-parameters), starting from ``state`` (a ``get_state()`` result) if given.

    Raises
    ------
    ValueError
        If ``state`` does not fit the solver or the parameters (a damaged saved model).
    """
    cls, names = _SOLVERS[solver]
    optimizer = cls(params, *(settings[name] for name in names))
    if state is not None:
        scalars, arrays = state
        own_scalars, own = optimizer.get_state()
        if set(scalars) != set(own_scalars) or set(arrays) != set(own):
            raise ValueError(f"the {solver} optimiser's state must hold {sorted(own_scalars)} "
                             f"and {sorted(own)}")
        for name, value in scalars.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"the optimiser's {name} must be a count, got {value!r}")
            setattr(optimizer, name, value)
        for name, targets in own.items():
            if len(arrays[name]) != len(targets):
                raise ValueError(f"the optimiser's {name} holds {len(arrays[name])} arrays, "
                                 f"expected {len(targets)}")
            for target, value in zip(targets, arrays[name]):
                if value.shape != target.shape or not np.all(np.isfinite(value)):
                    raise ValueError(f"the optimiser's {name} arrays must be finite and shaped "
                                     "like the parameters")
                target[...] = value
    return optimizer


def configure(optimizer, settings):
    """Set ``optimizer``'s hyper-parameters from ``settings`` (its state is kept)."""
    for name in _SOLVERS[optimizer.solver][1]:
        setattr(optimizer, name, settings[name])


def clip_global_norm(grads, max_norm):
    """Scale every gradient in place so that their joint L2 norm is at most ``max_norm``.

    Returns the norm before clipping (NaN or infinity if a gradient is not finite: then nothing
    is scaled).
    """
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))
    if max_norm is not None and norm > max_norm and np.isfinite(norm):
        scale = max_norm / (norm + 1e-12)
        for g in grads:
            g *= scale
    return norm
