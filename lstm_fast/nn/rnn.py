"""``lstm_fast.RNN``: PyTorch's ``nn.RNN`` (Elman) on NumPy arrays, run by the Cython engine."""

import numpy as np

from ._recurrent import HiddenStateLayer

__all__ = ["RNN"]


class RNN(HiddenStateLayer):
    """A multi-layer Elman RNN with the semantics and weight layout of ``torch.nn.RNN``.

    For each step::

        h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)      (relu with nonlinearity="relu")

    The error signal going back in time is multiplied by ``W_hh`` and the activation's slope at
    every step, so over long lags it vanishes (or explodes): the problem the LSTM's cell solves.

    Parameters
    ----------
    input_size : int
        Features per step of the input.
    hidden_size : int
        Size H of the hidden state.
    num_layers : int, default=1
        Stacked layers; layer ``l + 1`` reads layer ``l``'s output sequence.
    nonlinearity : {"tanh", "relu"}, default="tanh"
        The activation.
    bias : bool, default=True
        Whether the layers have ``bias_ih`` and ``bias_hh``.
    batch_first : bool, default=False
        Batched input and output are ``(B, T, F)`` instead of ``(T, B, F)``.
    dropout : float, default=0.0
        Dropout probability on each layer's output except the last, in training only.
    bidirectional : bool, default=False
        Run a reverse direction too and concatenate both outputs (D = 2).
    dtype : {np.float32, np.float64}, default=np.float32
        Precision of the parameters and of all the math.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights and the dropout masks.
    recurrent_init : {"orthogonal", "glorot"}, default="orthogonal"
        Initialisation of ``weight_hh`` (see :class:`lstm_fast.LSTM`).

    Notes
    -----
    Initialisation: ``weight_hh`` is orthogonal, ``weight_ih`` Glorot-uniform, biases 0.
    Everything else (input checks, threads, runs of steps, assigning parameters) is as for
    :class:`lstm_fast.LSTM`.

    Examples
    --------
    >>> import numpy as np, lstm_fast
    >>> rnn = lstm_fast.RNN(input_size=3, hidden_size=8, random_state=0)
    >>> output, h_n = rnn.forward(np.zeros((5, 2, 3), dtype=np.float32))
    >>> output.shape, h_n.shape
    ((5, 2, 8), (1, 2, 8))
    """

    _gates = 1
    _gate_names = ("h",)  # the engine stores h_t as the RNN's activated gate

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float32,
                 random_state=None, recurrent_init="orthogonal"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, random_state, recurrent_init)

    @property
    def _cell(self):
        return "rnn_" + self.nonlinearity

    def _repr_extra(self):
        return super()._repr_extra() + [("nonlinearity", "tanh")]
