"""``lstm_fast.GRU``: PyTorch's ``nn.GRU`` on NumPy arrays, run by the Cython engine."""

import numpy as np

from ._recurrent import HiddenStateLayer

__all__ = ["GRU"]


class GRU(HiddenStateLayer):
    """A multi-layer GRU with the semantics and weight layout of ``torch.nn.GRU``.

    For each step, with gate blocks in PyTorch's order ``[r, z, n]``::

        r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    Parameters
    ----------
    input_size : int
        Features per step of the input.
    hidden_size : int
        Size H of the hidden state.
    num_layers : int, default=1
        Stacked layers; layer ``l + 1`` reads layer ``l``'s output sequence.
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
    Initialisation: each ``[r, z, n]`` block of ``weight_hh`` is orthogonal, ``weight_ih`` is
    Glorot-uniform, biases are 0. Everything else (input checks, threads, runs of steps,
    assigning parameters) is as for :class:`lstm_fast.LSTM`.

    Examples
    --------
    >>> import numpy as np, lstm_fast
    >>> gru = lstm_fast.GRU(input_size=3, hidden_size=8, random_state=0)
    >>> output, h_n = gru.forward(np.zeros((5, 2, 3), dtype=np.float32))
    >>> output.shape, h_n.shape
    ((5, 2, 8), (1, 2, 8))
    """

    _cell = "gru"
    _gates = 3
    _gate_names = ("r", "z", "n")

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float32, random_state=None,
                 recurrent_init="orthogonal"):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, random_state, recurrent_init)

    def _state_records(self, stored, out, direction, packing, c_n):
        # h_t: the direction's columns of the output
        H = self.hidden_size
        return {"h": out[:, direction * H:(direction + 1) * H]}

    def _stored_shapes(self, N):
        # the activated gates, h_{t-1}, and the recurrent pre-activations' n block
        return dict(super()._stored_shapes(N), hidden_gates=(N, 3 * self.hidden_size))
