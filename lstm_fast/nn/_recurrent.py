"""``lstm_fast.LSTM``: PyTorch's ``nn.LSTM`` on NumPy arrays, run by the Cython engine."""

import contextlib
import functools
import numbers
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from sklearn.utils import check_random_state

from .._checks import (LARGE_BYTES, as_float_array, check_dtype, check_finite, check_int,
                      check_memory)
from .._lstm import Workspace, backward_layer, forward_layer, threads_for
from .packing import packing_for

__all__ = ["LSTM"]

# Work of one engine call at most, in multiply-adds (a row's gate pass, element-wise and at
# batch 1 slower per element than a product's multiply-add, counted as 256 H): a layer-direction
# with more goes to the engine in runs of whole steps, one call each, the state carried from one
# to the next and the weights packed by the first (see Workspace). Python handles Ctrl-C between
# calls, so a forward or backward over a very long sequence stops within one run, a fraction of
# a second. The runs give the results of one call (backward sums the weight gradients of its
# runs in the workspace and adds them in at the last). Training's runs are a third as long:
# backward does twice the forward's work. A run has at least _MIN_RUN_ROWS rows: each backward
# run ends in weight-gradient products over its rows, which with a few hundred rows cost a tenth
# of the backward more.
_CALL_MACS = 1 << 30
_MIN_RUN_ROWS = 1024

# Largest size of the engine's dimensions (its products take C ints).
_MAX_DIM = 2**31 - 1

# Attributes fixed at construction: they shape the parameters and the engine's buffers.
_FIXED = frozenset({"input_size", "hidden_size", "num_layers", "proj_size", "bias",
                    "bidirectional", "dtype", "num_directions", "output_size"})

class LSTM:
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

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float32,
                 forget_bias=1.0, random_state=None):
        self.input_size = check_int(input_size, "input_size", 1, _MAX_DIM)
        self.hidden_size = check_int(hidden_size, "hidden_size", 1, _MAX_DIM // 4)
        self.num_layers = check_int(num_layers, "num_layers", 1)
        self.proj_size = check_int(proj_size, "proj_size", 0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size, got proj_size="
                             f"{proj_size} and hidden_size={hidden_size}")
        if not isinstance(dropout, numbers.Real) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        if not isinstance(forget_bias, numbers.Real) or not np.isfinite(forget_bias):
            raise ValueError(f"forget_bias must be a finite number, got {forget_bias!r}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.dtype = check_dtype(dtype)
        self.forget_bias = float(forget_bias)
        #: D: 2 if bidirectional else 1.
        self.num_directions = 2 if self.bidirectional else 1
        #: H_out: proj_size if > 0 else hidden_size.
        self.output_size = self.proj_size or self.hidden_size
        self._rng = check_random_state(random_state)
        n_params = self._param_count()
        if 2 * n_params * np.dtype(self.dtype).itemsize >= LARGE_BYTES:
            check_memory(2 * n_params * np.dtype(self.dtype).itemsize,
                         f"{self!r}: its {n_params} parameters and their gradients")
        self._training_lock = threading.Lock()
        # Per packed row, bytes a forward holds at most (inference, training: see _check_input),
        # and each layer's rows per engine call [inference, training] (see _CALL_MACS): all
        # fixed by the sizes.
        self._row_bytes = (self._forward_row_bytes(False), self._forward_row_bytes(True))
        self._call_rows = [self._rows_per_call(layer) for layer in range(self.num_layers)]
        self._params = self._init_params()
        # Each layer-direction's (suffix, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr), None
        # where absent: the same arrays as _params (they are only ever updated in place).
        self._layer_weights = {
            (layer, d): self._named_weights(f"_l{layer}" + ("_reverse" if d else ""))
            for layer in range(self.num_layers) for d in range(self.num_directions)}
        self.grads = {k: np.zeros_like(v) for k, v in self._params.items()}
        self.grad_hx = None
        self._cache = None
        # Activation storage of the last backpropagated forward, reused by the next one of the
        # same size (fresh large arrays cost page faults every training step).
        self._spare = {}
        # Each layer-direction's engine workspace, kept for the next call (see Workspace).
        self._workspaces = {}

    def __getstate__(self):
        """A copy or pickle holds the parameters and settings, not the buffers, the pending
        training forward or the accumulated gradients (as torch's modules keep no .grad)."""
        state = self.__dict__.copy()
        for name in ("_training_lock", "_spare", "_workspaces", "_cache", "grads", "grad_hx"):
            del state[name]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state, _training_lock=threading.Lock(), _spare={}, _workspaces={},
                             _cache=None, grad_hx=None,
                             grads={k: np.zeros_like(v) for k, v in state["_params"].items()})

    def __setattr__(self, name, value):
        """Assigning a parameter copies the array into it (the engine and the optimisers hold the
        parameter arrays themselves); the sizes fixed at construction cannot change."""
        if "_params" in self.__dict__:
            if name in self._params:
                self._assign(name, value)
                return
            if name in _FIXED:
                raise AttributeError(f"{name} is fixed when an LSTM is made; make a new LSTM "
                                     f"for another {name}")
            if name == "dropout" and (not isinstance(value, numbers.Real)
                                      or not 0.0 <= value <= 1.0):
                raise ValueError(f"dropout must be a number in [0, 1], got {value!r}")
        object.__setattr__(self, name, value)

    def _workspace(self, layer, direction):
        """The layer-direction's workspace, taken for one engine call: put it back after. A call
        that runs beside another one on the same layer-direction gets a new one."""
        return self._workspaces.pop((layer, direction), None) or Workspace()

    # ----------------------------------------------------------------------------- parameters

    def _layer_input_size(self, layer):
        return self.input_size if layer == 0 else self.num_directions * self.output_size

    def _param_count(self):
        """Parameters in all (what _param_shapes lists, counted without listing them)."""
        H, P, D = self.hidden_size, self.output_size, self.num_directions
        per_direction = 4 * H * P + 8 * H * self.bias + H * P * bool(self.proj_size)
        inputs = self.input_size + (self.num_layers - 1) * D * P
        return D * (self.num_layers * per_direction + 4 * H * inputs)

    def _param_shapes(self):
        return param_shapes(self.input_size, self.hidden_size, self.num_layers, self.bias,
                            self.bidirectional, self.proj_size)

    def _init_params(self):
        H, rng, params = self.hidden_size, self._rng, {}
        for name, shape in self._param_shapes().items():
            if name.startswith("weight_hh"):
                w = np.concatenate([_orthogonal(H, shape[1], rng) for _ in range(4)])
            elif name.startswith("weight"):
                limit = np.sqrt(6.0 / (shape[0] + shape[1]))
                w = rng.uniform(-limit, limit, size=shape)
            else:
                w = np.zeros(shape)
                if name.startswith("bias_ih"):
                    w[H:2 * H] = self.forget_bias
            params[name] = np.ascontiguousarray(w, dtype=self.dtype)
        return params

    def named_parameters(self):
        """The live parameter arrays as ``(name, array)`` pairs; updating them in place trains."""
        return list(self._params.items())

    def state_dict(self):
        """Return a copy of the parameters as a dict named and shaped as PyTorch's ``nn.LSTM``."""
        return {k: v.copy() for k, v in self._params.items()}

    def load_state_dict(self, state_dict):
        """Copy parameters from ``state_dict`` (NumPy arrays or PyTorch CPU tensors).

        Raises
        ------
        ValueError
            If a key is missing, unexpected, or holds an array of the wrong shape.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        shapes = self._param_shapes()
        missing = sorted(set(shapes) - set(state_dict.keys()))
        extra = sorted(map(repr, set(state_dict.keys()) - set(shapes)))
        if missing or extra:
            raise ValueError(f"state_dict does not match this LSTM: missing keys {missing}, "
                             f"unexpected keys [{', '.join(extra)}]")
        new = {name: self._checked_param(name, state_dict[name], f"state_dict[{name!r}]")
               for name in shapes}
        for name, arr in new.items():
            self._params[name][...] = arr

    def _checked_param(self, name, value, label):
        """``value`` as a finite array of the parameter ``name``'s shape, or a clear error."""
        arr = as_float_array(value, label, self.dtype)
        shape = self._params[name].shape
        if arr.shape != shape:
            raise ValueError(f"{label} has shape {arr.shape}, expected {shape}")
        check_finite(arr, label)
        return arr

    def _assign(self, name, value):
        self._params[name][...] = self._checked_param(name, value, name)

    def zero_grad(self):
        """Set every accumulated parameter gradient in ``grads`` to zero."""
        for g in self.grads.values():
            g.fill(0)
        self.grad_hx = None

    def __getattr__(self, name):
        params = self.__dict__.get("_params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self):
        extra = "".join(f", {k}={getattr(self, k)!r}" for k, default in
                        [("num_layers", 1), ("bias", True), ("batch_first", False),
                         ("dropout", 0.0), ("bidirectional", False), ("proj_size", 0)]
                        if getattr(self, k) != default)
        return (f"LSTM({self.input_size}, {self.hidden_size}{extra}, "
                f"dtype={np.dtype(self.dtype).name})")

    # ----------------------------------------------------------------------------- forward

    def forward(self, x, hx=None, lengths=None, training=False):
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

        Returns
        -------
        output : ndarray of shape (T, B, D*H_out) (batch-first or unbatched like ``x``)
        (h_n, c_n) : tuple of ndarray
            Each sequence's states after its last valid step, shaped like ``h_0`` and ``c_0``.

        Raises
        ------
        MemoryError
            Before anything is allocated, if the call would need more memory than is available.
        RuntimeError
            With ``training=True``, if another thread is training this layer at the same time.
        KeyboardInterrupt
            On Ctrl-C: a long call stops within one run of the engine (see Notes of the class).
        """
        if not training:
            return self._forward(x, hx, lengths, False)
        with self._training_step("forward(training=True)"):
            return self._forward(x, hx, lengths, True)

    __call__ = forward

    def _forward(self, x, hx, lengths, training):
        x, batched = self._check_input(x, training)
        T, B, _ = x.shape
        packing = packing_for(self._check_lengths(lengths, T, B, batched), T, B)
        h_n, c_n = self._initial_state(hx, B, batched, packing)
        layer_in = packing.pack(x)
        cache = [] if training else None
        for layer in range(self.num_layers):
            if training and layer > 0 and self.dropout > 0:
                keep = self._rng.random_sample(layer_in.shape) >= self.dropout
                mask = (keep / (1.0 - self.dropout) if self.dropout < 1 else keep * 0.0)
                layer_in = layer_in * mask.astype(self.dtype)
            else:
                mask = None
            out = np.empty((packing.n_rows, self.num_directions * self.output_size), self.dtype)
            k = layer * self.num_directions
            stored = self._each_direction(
                B, lambda d, threads, cancel: self._run_forward(
                    layer, d, layer_in, packing, h_n[k + d], c_n[k + d], out, training, threads,
                    cancel))
            if training:
                cache.append(dict(layer_in=layer_in, mask=mask, directions=stored))
            layer_in = out
        if training:
            self._cache = dict(cache=cache, packing=packing, batched=batched,
                               out_shape=(T, B, layer_in.shape[1]),
                               thread=threading.current_thread())
        output = self._to_user_layout(packing.unpack(layer_in), batched)
        h_n, c_n = packing.unsort_state(h_n), packing.unsort_state(c_n)
        if not batched:
            h_n, c_n = h_n[:, 0], c_n[:, 0]
        return output, (h_n, c_n)

    @contextlib.contextmanager
    def _training_step(self, what):
        """Hold the layer's training lock for ``what``; a RuntimeError if another thread holds it
        (concurrent training calls would mix their activations and gradients)."""
        if not self._training_lock.acquire(blocking=False):
            raise RuntimeError(f"{what}: another thread is running forward(training=True) or "
                               "backward on this LSTM; a layer trains in one thread at a time "
                               "(give each thread its own copy, e.g. copy.deepcopy(lstm))")
        try:
            yield
        finally:
            self._training_lock.release()

    def _named_weights(self, sfx):
        """(sfx, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr) with None where absent."""
        p = self._params
        return (sfx, p["weight_ih" + sfx], p["weight_hh" + sfx], p.get("bias_ih" + sfx),
                p.get("bias_hh" + sfx), p.get("weight_hr" + sfx))

    def _each_direction(self, B, run):
        """[run(direction, n_threads, cancel) for each direction]. With two directions and two or
        more threads worth using at this size, the directions run at the same time on one thread
        each (no per-step synchronisation), the reverse one on a worker thread; if the forward
        one raises (Ctrl-C), ``cancel`` stops the reverse one at its next run of steps, and this
        waits for it before raising."""
        if self.num_directions == 1:
            return [run(0, 0, None)]
        if threads_for(B, self.hidden_size, self.output_size) < 2:
            return [run(0, 0, None), run(1, 0, None)]
        cancel = threading.Event()
        reverse = _direction_worker().submit(run, 1, 1, cancel)
        try:
            return [run(0, 1, None), reverse.result()]
        except BaseException:
            cancel.set()
            wait([reverse])
            raise

    def _rows_per_call(self, layer):
        """Packed rows per engine call for a layer, inference and training (see _CALL_MACS)."""
        H, P = self.hidden_size, self.output_size
        work = (4 * H * (self._layer_input_size(layer) + P) + (H * P if self.proj_size else 0)
                + 256 * H)
        return (max(_MIN_RUN_ROWS, _CALL_MACS // work),
                max(_MIN_RUN_ROWS, _CALL_MACS // (3 * work)))

    def _run_forward(self, layer, direction, layer_in, packing, h, c, out, training, threads,
                     cancel):
        """One layer-direction through the engine; returns what backward needs (or None)."""
        _, w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_weights[layer, direction]
        P, N, rows = self.output_size, packing.n_rows, self._call_rows[layer][training]
        stored = self._stored(layer, direction, N) if training else None
        gates, tanh_cell, cell_prev, hidden_prev = stored or (None, None, None, None)
        workspace = self._workspace(layer, direction)
        if N <= rows:
            forward_layer(layer_in, w_ih, w_hh, b_ih, b_hh, w_hr, packing.batch_sizes,
                          packing.offsets, h, c, out, direction * P, direction, gates, tanh_cell,
                          cell_prev, hidden_prev, threads, workspace)
        else:
            runs = packing.runs(rows)
            for i, (batch_sizes, offsets, r0, r1) in enumerate(runs[::-1] if direction else runs):
                if cancel is not None and cancel.is_set():
                    return None
                b = batch_sizes[0]  # the run's largest step: rows past it wait unchanged
                part = [None] * 4 if stored is None else [a[r0:r1] for a in stored]
                forward_layer(layer_in[r0:r1], w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes,
                              offsets, h[:b], c[:b], out[r0:r1], direction * P, direction, *part,
                              threads, workspace, i > 0)
        self._workspaces[layer, direction] = workspace
        return stored

    def _stored(self, layer, direction, N):
        """Arrays for what a training forward stores for backward: activated gates, tanh(c_t),
        c_{t-1}, h_{t-1} (N rows); the last backpropagated forward's if of the same size."""
        H, P, dt = self.hidden_size, self.output_size, self.dtype
        stored = self._spare.pop((layer, direction), None)
        if stored is None or stored[0].shape[0] != N:
            stored = (np.empty((N, 4 * H), dt), np.empty((N, H), dt), np.empty((N, H), dt),
                      np.empty((N, P), dt))
        return stored

    # ----------------------------------------------------------------------------- backward

    def backward(self, grad_output, grad_h_n=None, grad_c_n=None):
        """Backpropagate through the latest ``training=True`` forward (once).

        Parameters
        ----------
        grad_output : array-like shaped like that forward's ``output``
            dL/doutput. Entries at padded steps are ignored (those outputs are constant 0).
        grad_h_n, grad_c_n : array-like shaped like ``h_n`` and ``c_n``, optional
            dL/dh_n and dL/dc_n; zeros when None.

        Returns
        -------
        grad_x : ndarray shaped like that forward's ``x``
            dL/dx. Parameter gradients are ADDED into ``grads``; dL/dh_0 and dL/dc_0 are stored in
            ``grad_hx``.

        Raises
        ------
        RuntimeError
            If no ``training=True`` forward precedes, or it was already backpropagated, or
            another thread is training this layer at the same time.
        KeyboardInterrupt
            On Ctrl-C, within one run of the engine; ``grads`` are then partly added to, so
            call ``zero_grad()`` before the next step.
        """
        with self._training_step("backward"):
            return self._backward(grad_output, grad_h_n, grad_c_n)

    def _backward(self, grad_output, grad_h_n, grad_c_n):
        if self._cache is None:
            raise RuntimeError("backward needs a preceding forward(..., training=True); the latest "
                               "training forward, if any, was already backpropagated")
        if self._cache["thread"] is not threading.current_thread():
            raise RuntimeError(
                "backward: the latest forward(training=True) on this LSTM was made by another "
                "thread (it replaced this thread's, if any): a layer trains in one thread at a "
                "time (give each thread its own copy, e.g. copy.deepcopy(lstm))")
        state = self._cache
        packing, batched = state["packing"], state["batched"]
        T, B, _ = state["out_shape"]
        L, D, H, P = self.num_layers, self.num_directions, self.hidden_size, self.output_size
        g = as_float_array(grad_output, "grad_output", self.dtype)
        expected = self._user_shape(state["out_shape"], batched)
        if g.shape != expected:
            raise ValueError(f"grad_output must have shape {expected} like the output, got "
                             f"{g.shape}")
        check_finite(g, "grad_output")
        d_h = self._state_or_zeros(grad_h_n, "grad_h_n", (D * L, B, P), batched, packing)
        d_c = self._state_or_zeros(grad_c_n, "grad_c_n", (D * L, B, H), batched, packing)
        self._cache = None
        d_out = packing.pack(self._from_user_layout(g, batched))
        for layer in range(L - 1, -1, -1):
            layer_in, mask = state["cache"][layer]["layer_in"], state["cache"][layer]["mask"]
            stored = state["cache"][layer]["directions"]
            d_in, *reverse = self._each_direction(
                B, lambda d, threads, cancel: self._run_backward(
                    layer, d, layer_in, packing, d_out, d_h[layer * D + d], d_c[layer * D + d],
                    stored[d], threads, cancel))
            for d_reverse in reverse:
                d_in += d_reverse
            if mask is not None:
                d_in *= mask
            d_out = d_in
        d_h, d_c = packing.unsort_state(d_h), packing.unsort_state(d_c)
        self.grad_hx = (d_h, d_c) if batched else (d_h[:, 0], d_c[:, 0])
        return self._to_user_layout(packing.unpack(d_out), batched)

    def _run_backward(self, layer, direction, layer_in, packing, d_out, d_h, d_c, stored,
                      threads, cancel):
        """One layer-direction's BPTT through the engine; returns dL/d(its input), and adds its
        parameter gradients into ``grads``. Runs of steps go from the last step back (the
        reverse direction: from the first)."""
        sfx, w_ih, w_hh, _, _, w_hr = self._layer_weights[layer, direction]
        g, P = self.grads, self.output_size
        grads = (g["weight_ih" + sfx], g["weight_hh" + sfx], g.get("bias_ih" + sfx),
                 g.get("bias_hh" + sfx), g.get("weight_hr" + sfx))
        d_in = np.zeros_like(layer_in)
        workspace = self._workspace(layer, direction)
        runs = packing.runs(self._call_rows[layer][True])
        if len(runs) == 1:
            backward_layer(layer_in, w_ih, w_hh, w_hr, packing.batch_sizes, packing.offsets,
                           d_out, direction * P, bool(direction), d_h, d_c, *stored, d_in,
                           *grads, n_threads=threads, workspace=workspace)
        else:
            for i, (batch_sizes, offsets, r0, r1) in enumerate(runs if direction else runs[::-1]):
                if cancel is not None and cancel.is_set():
                    return d_in
                b = batch_sizes[0]
                backward_layer(layer_in[r0:r1], w_ih, w_hh, w_hr, batch_sizes, offsets,
                               d_out[r0:r1], direction * P, bool(direction), d_h[:b], d_c[:b],
                               *(a[r0:r1] for a in stored), d_in[r0:r1], *grads,
                               n_threads=threads, workspace=workspace, prepared=i > 0,
                               finish=i == len(runs) - 1)
        self._workspaces[layer, direction] = workspace
        self._spare[layer, direction] = stored
        return d_in

    # ----------------------------------------------------------------------------- input checks

    def _user_shape(self, time_major_shape, batched):
        T, B, F = time_major_shape
        if not batched:
            return (T, F)
        return (B, T, F) if self.batch_first else (T, B, F)

    def _from_user_layout(self, a, batched):
        """User layout to (T, B, F), C-contiguous."""
        if not batched:
            a = a[:, None, :]
        elif self.batch_first:
            a = a.transpose(1, 0, 2)
        return np.ascontiguousarray(a)

    def _to_user_layout(self, a, batched):
        if not batched:
            return a[:, 0, :]
        return a.transpose(1, 0, 2) if self.batch_first else a

    def _check_input(self, x, training):
        x = as_float_array(x, "x", None)
        if x.ndim not in (2, 3):
            raise ValueError(f"x must be 3-D (batched) or 2-D (unbatched), got {x.ndim}-D "
                             f"with shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x must have input_size={self.input_size} features in its last axis, "
                             f"got shape {x.shape}")
        batched = x.ndim == 3
        T, B = (x.shape[1], x.shape[0]) if batched and self.batch_first else x.shape[:2]
        if not batched:
            T, B = x.shape[0], 1
        if T == 0 or B == 0:
            raise ValueError(f"x must have at least one step and one sequence, got shape {x.shape}")
        need = T * B * self._row_bytes[training]
        if need >= LARGE_BYTES:
            check_memory(need, f"forward{'(training=True)' * training} on x of shape {x.shape}")
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        x = self._from_user_layout(x, batched)
        check_finite(x, "x")
        return x, batched

    def _forward_row_bytes(self, training):
        """About the most memory a forward holds at once per step of a sequence: the input's
        copy, two layers' outputs and the caller's, and in training what every layer keeps for
        backward (activations, inputs, dropout masks)."""
        H, P, D, L = self.hidden_size, self.output_size, self.num_directions, self.num_layers
        per_row = self.input_size + 3 * D * P
        if training:
            per_row += L * D * (6 * H + P) + 2 * (L - 1) * D * P
        return per_row * np.dtype(self.dtype).itemsize

    def _check_lengths(self, lengths, T, B, batched):
        if lengths is None:
            return None
        lengths = np.asarray(lengths)
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
        expected = (B,) if batched else ((), (1,))
        if (batched and lengths.shape != (B,)) or (not batched and lengths.shape not in expected):
            raise ValueError(f"lengths must have shape {(B,)}, one per sequence, got "
                             f"{lengths.shape}")
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths must be in [1, T={T}], got values in "
                             f"[{lengths.min()}, {lengths.max()}]")
        return lengths.reshape(B).astype(np.intp)

    def _initial_state(self, hx, B, batched, packing):
        """Checked (h_0, c_0) as fresh arrays in packed (sorted) order, for the engine to update."""
        shapes = ((self.num_directions * self.num_layers, B, self.output_size),
                  (self.num_directions * self.num_layers, B, self.hidden_size))
        if hx is None:
            return np.zeros(shapes[0], self.dtype), np.zeros(shapes[1], self.dtype)
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError("hx must be a tuple (h_0, c_0)")
        states = []
        for name, a, shape in zip(("h_0", "c_0"), hx, shapes):
            a = as_float_array(a, f"hx {name}", self.dtype)
            want = shape if batched else (shape[0], shape[2])
            if a.shape != want:
                raise ValueError(f"hx {name} must have shape {want}, got {a.shape}")
            check_finite(a, f"hx {name}")
            states.append(packing.sort_state(a if batched else a[:, None, :]))
        return tuple(states)

    def _state_or_zeros(self, a, name, shape, batched, packing):
        if a is None:
            return np.zeros(shape, self.dtype)
        a = as_float_array(a, name, self.dtype)
        want = shape if batched else (shape[0], shape[2])
        if a.shape != want:
            raise ValueError(f"{name} must have shape {want} like the forward's state, got "
                             f"{a.shape}")
        check_finite(a, name)
        return packing.sort_state(a if batched else a[:, None, :])


def param_shapes(input_size, hidden_size, num_layers=1, bias=True, bidirectional=False,
                 proj_size=0):
    """The parameters of such an LSTM, in ``state_dict`` order: ``{name: shape}``."""
    H, P, D = hidden_size, proj_size or hidden_size, 2 if bidirectional else 1
    shapes = {}
    for layer in range(num_layers):
        for direction in range(D):
            sfx = f"_l{layer}" + ("_reverse" if direction else "")
            shapes["weight_ih" + sfx] = (4 * H, input_size if layer == 0 else D * P)
            shapes["weight_hh" + sfx] = (4 * H, P)
            if bias:
                shapes["bias_ih" + sfx] = (4 * H,)
                shapes["bias_hh" + sfx] = (4 * H,)
            if proj_size:
                shapes["weight_hr" + sfx] = (P, H)
    return shapes


@functools.lru_cache(maxsize=1)
def _direction_worker():
    """The thread that runs a bidirectional layer's reverse direction beside the forward one."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstm_fast")


def _orthogonal(rows, cols, rng):
    """A (rows x cols) matrix with orthonormal rows or columns (whichever are fewer)."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if rows >= cols else q.T
