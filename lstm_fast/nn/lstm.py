"""``lstm_fast.LSTM``: PyTorch's ``nn.LSTM`` on NumPy arrays, run by the Cython engine."""

import numbers

import numpy as np

from ._recurrent import _STORED, RecurrentLayer

__all__ = ["LSTM"]


class LSTM(RecurrentLayer):
    """A multi-layer LSTM with the semantics and weight layout of ``torch.nn.LSTM``.

    For each step, with gate blocks in PyTorch's order ``[i, f, g, o]``::

        i, f, o = sigmoid(W_i* x_t + b_i* + W_h* h_{t-1} + b_h*)
        g = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)            (then h_t = W_hr h_t when proj_size > 0)

    Parameters
    ----------
    input_size : int
        Features per step of the input.
    hidden_size : int
        Size H of the cell state (and of the hidden state without projection).
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
    proj_size : int, default=0
        If > 0, the hidden state is projected to this size P (must be < hidden_size).
    dtype : {np.float32, np.float64}, default=np.float32
        Precision of the parameters and of all the math.
    forget_bias : float, default=1.0
        Initial value of the forget-gate block of ``bias_ih`` (``bias_hh`` starts at 0).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights and the dropout masks.
    recurrent_init : {"orthogonal", "glorot"}, default="orthogonal"
        Initialisation of ``weight_hh``: an orthogonal matrix per gate block, or Glorot-uniform
        (for comparison: orthogonal weights keep the error's norm going back in time).

    Notes
    -----
    Initialisation: each ``[i, f, g, o]`` block of ``weight_hh`` is (semi-)orthogonal,
    ``weight_ih`` and ``weight_hr`` are Glorot-uniform, biases are 0 except the forget block of
    ``bias_ih``. The same ``random_state`` gives the same weights. Assigning a parameter
    (``lstm.weight_ih_l0 = w``) checks ``w`` and copies it into the parameter.

    Inputs must be finite: NaN or infinity in ``x`` or ``hx`` raises a ValueError instead of
    propagating silently through every later step.

    ``forward`` and ``backward`` run their time loops with the GIL released; several threads may
    call ``forward(..., training=False)`` on one layer at once. A ``training=True`` forward keeps
    its activations for exactly one ``backward`` in the same thread: a layer trains in one thread
    at a time (another thread's training call meanwhile is a RuntimeError).

    A long call (more than about 2^30 multiply-adds a layer-direction) goes to the engine in runs
    of whole steps, so that Ctrl-C stops it within a run, a fraction of a second; the results are
    those of one call.

    Examples
    --------
    >>> import numpy as np, lstm_fast
    >>> lstm = lstm_fast.LSTM(input_size=3, hidden_size=8, random_state=0)
    >>> x = np.zeros((5, 2, 3), dtype=np.float32)  # (T, B, input_size)
    >>> output, (h_n, c_n) = lstm.forward(x)
    >>> output.shape, h_n.shape
    ((5, 2, 8), (1, 2, 8))
    """

    _cell = "lstm"
    _gates = 4
    _has_cell = True
    _gate_names = ("i", "f", "g", "o")

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float32,
                 forget_bias=1.0, random_state=None, recurrent_init="orthogonal"):
        if not isinstance(forget_bias, numbers.Real) or not np.isfinite(forget_bias):
            raise ValueError(f"forget_bias must be a finite number, got {forget_bias!r}")
        self.forget_bias = float(forget_bias)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, random_state, recurrent_init,
                         proj_size=proj_size)

    def _initial_bias(self, name, shape):
        b = np.zeros(shape)
        if name.startswith("bias_ih"):
            b[self.hidden_size:2 * self.hidden_size] = self.forget_bias
        return b

    def _stored_shapes(self, N):
        # the activated gates, tanh(c_t), c_{t-1} and h_{t-1}
        H = self.hidden_size
        return dict(super()._stored_shapes(N), tanh_cell=(N, H), cell_prev=(N, H))

    def _state_records(self, stored, out, direction, packing, c_n):
        # c_t: the c_{t-1} the engine stored at the sequence's next step, or c_n after its last
        following, seqs = packing.following_rows(direction == 1)
        cell_prev = stored[_STORED.index("cell_prev")]
        c = np.where((following >= 0)[:, None], cell_prev[np.maximum(following, 0)], c_n[seqs])
        return {"c": c}

    def _repr_extra(self):
        return super()._repr_extra() + [("proj_size", 0)]

    def forward(self, x, hx=None, lengths=None, training=False, return_gates=False,
                precision=None):
        """Run the LSTM over a batch of sequences.

        Parameters
        ----------
        x : array-like of shape (T, B, input_size), (B, T, input_size) or (T, input_size)
            Time-major input, batch-first when ``batch_first``, or one unbatched sequence.
        hx : tuple (h_0, c_0) or None
            Initial states of shapes ``(D*num_layers, B, H_out)`` and
            ``(D*num_layers, B, hidden_size)``
            (no B axis for unbatched input); zeros when None.
        lengths : array-like of int, shape (B,), optional
            Valid steps of each sequence, in ``[1, T]``. Later steps are padding: they do not
            influence anything and their output rows are 0 (PyTorch's packed-sequence semantics).
        training : bool, default=False
            Keep what ``backward`` needs and apply ``dropout`` between layers.
        return_gates : bool, default=False
            Also return, per layer-direction (index ``layer * D + direction``, h_n's order), a
            dict of the gates ``"i", "f", "g", "o"`` and the cell state ``"c"`` at every step,
            each ``(T, B, hidden_size)`` in the layout of ``output``, 0 at padded steps: what
            the engine computed, not a recomputation.
        precision : {None, "bfloat16", "int8"}, default=None
            The precision of the products: None, the layer's dtype; ``"bfloat16"`` (float32
            layers, inference), weights rounded once to bfloat16 (kept until they change) and
            each step's inputs (x_t, h_{t-1}, and r_t before a projection) rounded as the
            product reads them, the sums, gates and cell state in float32. It runs on the CPU's
            AMX tiles or AVX512-BF16 instructions where they pay (``lstm-fast info``), else on
            the float32 products of the rounded values (the same numbers); outputs differ from
            float32 by about 1e-3 relative. ``"int8"`` (float32 layers, inference): weights
            quantised once to int8 with a scale per output channel, each step's inputs with a
            scale per sequence (dynamic quantisation), the sums exact, then scaled to float32
            (the scheme of fbgemm's and ONNX Runtime's quantised LSTMs): on AMX-INT8 tiles or
            AVX512-VNNI instructions where the CPU has them, else the float32 products of the
            quantised values (the same numbers); about 1e-2
            from float32. With ``training=True``, ``"bfloat16"`` is mixed-precision training:
            the forward's products as above and ``backward``'s too (dL/dh_t, the gradients
            dL/dA of the pre-activations and their other operands rounded to bfloat16), while
            the weights, gate math, states and gradient sums stay float32.

        Returns
        -------
        output : ndarray of shape (T, B, D*H_out) (batch-first or unbatched like ``x``)
        (h_n, c_n) : tuple of ndarray
            Each sequence's states after its last valid step, shaped like ``h_0`` and ``c_0``.
        gates : list of dict, only with ``return_gates``

        Raises
        ------
        MemoryError
            Before anything is allocated, if the call would need more memory than is available.
        RuntimeError
            With ``training=True``, if another thread is training this layer at the same time.
        KeyboardInterrupt
            On Ctrl-C: a long call stops within one run of the engine (see Notes of the class).
        """
        output, h_n, c_n, gates = self._forward_checked(x, hx, lengths, training, return_gates,
                                                        precision)
        return (output, (h_n, c_n), gates) if return_gates else (output, (h_n, c_n))

    __call__ = forward

    def backward(self, grad_output, grad_h_n=None, grad_c_n=None, return_state_grads=False):
        """Backpropagate through the latest ``training=True`` forward (once).

        Parameters
        ----------
        grad_output : array-like shaped like that forward's ``output``
            dL/doutput. Entries at padded steps are ignored (those outputs are constant 0).
        grad_h_n, grad_c_n : array-like shaped like ``h_n`` and ``c_n``, optional
            dL/dh_n and dL/dc_n; zeros when None.
        return_state_grads : bool, default=False
            Also return, per layer-direction (as ``forward``'s gates), ``{"h": dL/dh_t, "c":
            dL/dc_t}`` for every step from the BPTT itself, each ``(T, B, H_out)`` and
            ``(T, B, hidden_size)`` like the output, 0 at padded steps.

        Returns
        -------
        grad_x : ndarray shaped like that forward's ``x``
            dL/dx. Parameter gradients are ADDED into ``grads``; dL/dh_0 and dL/dc_0 are stored in
            ``grad_hx``.
        state_grads : list of dict, only with ``return_state_grads``

        Raises
        ------
        RuntimeError
            If no ``training=True`` forward precedes, or it was already backpropagated, or
            another thread is training this layer at the same time.
        KeyboardInterrupt
            On Ctrl-C, within one run of the engine; ``grads`` are then partly added to, so
            call ``zero_grad()`` before the next step.
        """
        return self._backward_checked(grad_output, grad_h_n, grad_c_n, return_state_grads)
