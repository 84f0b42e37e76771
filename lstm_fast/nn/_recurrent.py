"""What the recurrent layers share: parameters, layers x directions, dropout, the initial state,
packing, runs of steps and the engine calls. ``LSTM``, ``GRU`` and ``RNN`` say their cell."""

import contextlib
import functools
import numbers
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from sklearn.utils import check_random_state

from .._checks import (LARGE_BYTES, as_float_array, check_dtype, check_finite, check_int,
                      check_memory)
from .._lstm import (CELL_KINDS, PRECISIONS, Prepared, Workspace, backward_layer, forward_layer,
                     threads_for)
from .packing import packing_for

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

# What a training forward stores for backward, in the engine's argument order (None where the
# cell stores nothing there; see _stored_shapes).
_STORED = ("gates", "tanh_cell", "cell_prev", "hidden_prev", "hidden_gates")

# Attributes fixed at construction: they shape the parameters and the engine's buffers.
_FIXED = frozenset({"input_size", "hidden_size", "num_layers", "proj_size", "bias",
                    "bidirectional", "dtype", "num_directions", "output_size", "nonlinearity",
                    "recurrent_init"})


class RecurrentLayer:
    """A multi-layer recurrent layer with PyTorch's semantics, for the cell a subclass names.

    A subclass sets ``_cell`` (its name in the engine's ``CELL_KINDS``, or a property),
    ``_gates`` (gate blocks: 4, 3 or 1), ``_gate_names`` (their names in a gate record),
    ``_has_cell`` (an LSTM's cell state beside h), and may extend ``_stored_shapes`` (what its
    training forward keeps for backward), ``_state_records`` (the states a gate record holds)
    and ``_initial_bias``; and it gives the public ``forward``/``backward`` signatures.
    """

    _gates = 4
    _has_cell = True

    def __init__(self, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                 bidirectional, dtype, random_state, recurrent_init, proj_size=0):
        self.input_size = check_int(input_size, "input_size", 1, _MAX_DIM)
        self.hidden_size = check_int(hidden_size, "hidden_size", 1, _MAX_DIM // self._gates)
        self.num_layers = check_int(num_layers, "num_layers", 1)
        self.proj_size = check_int(proj_size, "proj_size", 0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size, got proj_size="
                             f"{proj_size} and hidden_size={hidden_size}")
        if not isinstance(dropout, numbers.Real) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        if recurrent_init not in ("orthogonal", "glorot"):
            raise ValueError(f"recurrent_init must be 'orthogonal' or 'glorot', got "
                             f"{recurrent_init!r}")
        self.recurrent_init = recurrent_init
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.dtype = check_dtype(dtype)
        #: D: 2 if bidirectional else 1.
        self.num_directions = 2 if self.bidirectional else 1
        #: H_out: proj_size if > 0 else hidden_size.
        self.output_size = self.proj_size or self.hidden_size
        self._rng = check_random_state(random_state)
        #: The engine's number for this layer's cell.
        self._kind = CELL_KINDS[self._cell]
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
        # Each layer-direction's engine workspace, kept for the next call (see Workspace), with
        # the version of the weights a forward packed into it (None: backward's packing).
        self._workspaces = {}
        # Bumped by every known change of the parameters (see mark_updated).
        self._version = 0

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
                kind = type(self).__name__
                raise AttributeError(f"{name} is fixed when an {kind} is made; make a new {kind} "
                                     f"for another {name}")
            if name == "dropout" and (not isinstance(value, numbers.Real)
                                      or not 0.0 <= value <= 1.0):
                raise ValueError(f"dropout must be a number in [0, 1], got {value!r}")
        object.__setattr__(self, name, value)

    def _workspace(self, layer, direction):
        """The layer-direction's workspace, taken for one engine call, and the version of the
        weights a forward packed into it (or None): put both back after. A call that runs beside
        another one on the same layer-direction gets a new workspace."""
        return self._workspaces.pop((layer, direction), None) or (Workspace(), None)

    def mark_updated(self):
        """Say that the parameter arrays were changed in place.

        Inference reuses the weights packed for the engine by the previous call until the
        parameters change, so that a stream of short calls (``B = 1``, ``T = 1``) costs little
        more than its arithmetic. Every change made through the layer is seen: ``backward``
        (the optimiser steps that follow it), ``load_state_dict`` and assigning a parameter
        (``layer.weight_hh_l0 = w``). Code that writes into the arrays themselves
        (``layer.weight_hh_l0[...] = w``, an optimiser of its own without ``backward``, a
        finite-difference check) must call ``mark_updated()`` before the next forward.
        """
        self._version += 1

    # ----------------------------------------------------------------------------- parameters

    def _layer_input_size(self, layer):
        return self.input_size if layer == 0 else self.num_directions * self.output_size

    def _param_count(self):
        """Parameters in all (what _param_shapes lists, counted without listing them)."""
        G, H, P, D = self._gates * self.hidden_size, self.hidden_size, self.output_size, \
            self.num_directions
        per_direction = G * P + 2 * G * self.bias + H * P * bool(self.proj_size)
        inputs = self.input_size + (self.num_layers - 1) * D * P
        return D * (self.num_layers * per_direction + G * inputs)

    def _param_shapes(self):
        return param_shapes(self.input_size, self.hidden_size, self.num_layers, self.bias,
                            self.bidirectional, self.proj_size, self._gates)

    def _init_params(self):
        H, rng, params = self.hidden_size, self._rng, {}
        for name, shape in self._param_shapes().items():
            if name.startswith("weight_hh") and self.recurrent_init == "orthogonal":
                w = np.concatenate([_orthogonal(H, shape[1], rng) for _ in range(self._gates)])
            elif name.startswith("weight"):
                limit = np.sqrt(6.0 / (shape[0] + shape[1]))
                w = rng.uniform(-limit, limit, size=shape)
            else:
                w = self._initial_bias(name, shape)
            params[name] = np.ascontiguousarray(w, dtype=self.dtype)
        return params

    def _initial_bias(self, name, shape):
        """A bias's initial value: zeros (the LSTM sets its forget block)."""
        return np.zeros(shape)

    def named_parameters(self):
        """The live parameter arrays as ``(name, array)`` pairs; updating them in place trains."""
        return list(self._params.items())

    def state_dict(self):
        """Return a copy of the parameters as a dict named and shaped as PyTorch's module's."""
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
            raise ValueError(f"state_dict does not match this {type(self).__name__}: missing "
                             f"keys {missing}, unexpected keys [{', '.join(extra)}]")
        new = {name: self._checked_param(name, state_dict[name], f"state_dict[{name!r}]")
               for name in shapes}
        for name, arr in new.items():
            self._params[name][...] = arr
        self.mark_updated()

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
        self.mark_updated()

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

    def _repr_extra(self):
        """(name, default) of the settings repr shows when they differ from the default."""
        return [("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                ("bidirectional", False)]

    def __repr__(self):
        extra = "".join(f", {k}={getattr(self, k)!r}" for k, default in self._repr_extra()
                        if getattr(self, k) != default)
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}, "
                f"dtype={np.dtype(self.dtype).name})")

    # ----------------------------------------------------------------------------- forward

    def _forward_checked(self, x, hx, lengths, training, return_gates, precision=None):
        """Forward with the training lock held when training: (output, h_n, c_n or None,
        the gate records or None)."""
        precision = self._check_precision(precision, training)
        if not training:
            return self._forward(x, hx, lengths, False, return_gates, precision)
        with self._training_step("forward(training=True)"):
            return self._forward(x, hx, lengths, True, return_gates, precision)

    def _check_precision(self, precision, training):
        """The engine's number for a forward's ``precision`` (see ``forward``)."""
        if precision is None or precision == np.dtype(self.dtype).name:
            return PRECISIONS["native"]
        if precision not in ("bfloat16", "int8"):
            raise ValueError(f"precision must be None, 'bfloat16' or 'int8', got {precision!r}")
        if self.dtype != np.float32:
            raise ValueError(f"precision={precision!r} runs float32 layers; this "
                             f"{type(self).__name__} is {np.dtype(self.dtype).name} (make it "
                             "with dtype=np.float32)")
        if training and precision == "int8":
            raise ValueError("precision='int8' is for inference (training=False); "
                             "mixed-precision training takes precision='bfloat16'")
        return PRECISIONS[precision]

    def _forward(self, x, hx, lengths, training, return_gates, precision):
        x, batched = self._check_input(x, training or return_gates)
        T, B, _ = x.shape
        packing = packing_for(self._check_lengths(lengths, T, B, batched), T, B)
        h_n, c_n = self._initial_state(hx, B, batched, packing)
        layer_in = packing.pack(x)
        cache = [] if training else None
        records = [] if return_gates else None
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
                    layer, d, layer_in, packing, h_n[k + d], _at(c_n, k + d), out, training,
                    return_gates, threads, cancel, precision))
            if training:
                cache.append(dict(layer_in=layer_in, mask=mask, directions=stored))
            if return_gates:
                records += [self._gate_record(s, out, d, packing, _at(c_n, k + d), batched)
                            for d, s in enumerate(stored)]
            layer_in = out
        if training:
            self._cache = dict(cache=cache, packing=packing, batched=batched,
                               out_shape=(T, B, layer_in.shape[1]), precision=precision,
                               thread=threading.current_thread())
        output = self._to_user_layout(packing.unpack(layer_in), batched)
        h_n, c_n = packing.unsort_state(h_n), c_n if c_n is None else packing.unsort_state(c_n)
        if not batched:
            h_n, c_n = h_n[:, 0], _at(c_n, (slice(None), 0))
        return output, h_n, c_n, records

    def _gate_record(self, stored, out, direction, packing, c_n, batched):
        """One layer-direction's gates per step, as forward(return_gates=True) returns them:
        {name: (T, B, H) in the caller's layout, 0 at padded steps}, from what the engine
        stored (the activated gates, and per cell the states: _state_records)."""
        H = self.hidden_size
        packed = {name: stored[0][:, i * H:(i + 1) * H] for i, name in enumerate(self._gate_names)}
        packed.update(self._state_records(stored, out, direction, packing, c_n))
        return {name: self._to_user_layout(packing.unpack(a).copy(), batched)
                for name, a in packed.items()}

    def _state_records(self, stored, out, direction, packing, c_n):
        """The states a cell's gate record holds besides its gates, packed: {name: (N, H)}."""
        return {}

    @contextlib.contextmanager
    def _training_step(self, what):
        """Hold the layer's training lock for ``what``; a RuntimeError if another thread holds it
        (concurrent training calls would mix their activations and gradients)."""
        if not self._training_lock.acquire(blocking=False):
            raise RuntimeError(f"{what}: another thread is running forward(training=True) or "
                               f"backward on this {type(self).__name__}; a layer trains in one "
                               "thread at a time (give each thread its own copy, e.g. "
                               "copy.deepcopy(layer))")
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
        if threads_for(B, self.hidden_size, self.output_size, self._gates) < 2:
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
        H, P, G = self.hidden_size, self.output_size, self._gates * self.hidden_size
        work = (G * (self._layer_input_size(layer) + P) + (H * P if self.proj_size else 0)
                + 256 * H)
        return (max(_MIN_RUN_ROWS, _CALL_MACS // work),
                max(_MIN_RUN_ROWS, _CALL_MACS // (3 * work)))

    def _run_forward(self, layer, direction, layer_in, packing, h, c, out, training, keep,
                     threads, cancel, precision):
        """One layer-direction through the engine; returns what backward needs (training) or
        what the engine stored for a gate record (keep), else None."""
        _, w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_weights[layer, direction]
        P, N = self.output_size, packing.n_rows
        rows = self._call_rows[layer][training or keep]
        if training:
            stored = self._stored(layer, direction, N)
        elif keep:  # arrays of its own: a training forward's spare ones may be in use
            stored = self._new_stored(N)
        else:
            stored = (None,) * len(_STORED)
        workspace, packed = self._workspace(layer, direction)
        version = self._version  # (read before packing: a change during the call repacks)
        first = Prepared.REUSE_PACKED if packed == version else Prepared.PACK
        if N <= rows:
            forward_layer(layer_in, w_ih, w_hh, b_ih, b_hh, w_hr, packing.batch_sizes,
                          packing.offsets, h, c, out, direction * P, direction, *stored[:4],
                          threads, workspace, first, self._kind, stored[4], precision)
        else:
            runs = packing.runs(rows)
            for i, (batch_sizes, offsets, r0, r1) in enumerate(runs[::-1] if direction else runs):
                if cancel is not None and cancel.is_set():
                    return None
                b = batch_sizes[0]  # the run's largest step: rows past it wait unchanged
                part = [_at(a, slice(r0, r1)) for a in stored]
                forward_layer(layer_in[r0:r1], w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes,
                              offsets, h[:b], _at(c, slice(0, b)), out[r0:r1], direction * P,
                              direction, *part[:4], threads, workspace,
                              Prepared.PACKED if i > 0 else first, self._kind, part[4],
                              precision, packing.batch_sizes[0])
        self._workspaces[layer, direction] = (workspace, version)
        return stored if training or keep else None

    def _stored(self, layer, direction, N):
        """Arrays for what a training forward stores for backward (N rows, see _stored_shapes),
        in _STORED's order; the last backpropagated forward's if of the same size."""
        stored = self._spare.pop((layer, direction), None)
        if stored is None or stored[0].shape[0] != N:
            stored = self._new_stored(N)
        return stored

    def _new_stored(self, N):
        shapes = self._stored_shapes(N)
        return tuple(np.empty(shapes[k], self.dtype) if k in shapes else None for k in _STORED)

    def _stored_shapes(self, N):
        """{engine argument: shape} of what a training forward stores, for N packed rows: the
        activated gates and h_{t-1}, and what the cell needs besides."""
        return {"gates": (N, self._gates * self.hidden_size),
                "hidden_prev": (N, self.output_size)}

    # ----------------------------------------------------------------------------- backward

    def _backward_checked(self, grad_output, grad_h_n, grad_c_n, return_state_grads):
        with self._training_step("backward"):
            return self._backward(grad_output, grad_h_n, grad_c_n, return_state_grads)

    def _backward(self, grad_output, grad_h_n, grad_c_n, return_state_grads):
        if self._cache is None:
            raise RuntimeError("backward needs a preceding forward(..., training=True); the latest "
                               "training forward, if any, was already backpropagated")
        if self._cache["thread"] is not threading.current_thread():
            raise RuntimeError(
                f"backward: the latest forward(training=True) on this {type(self).__name__} was "
                "made by another thread (it replaced this thread's, if any): a layer trains in "
                "one thread at a time (give each thread its own copy, e.g. copy.deepcopy(layer))")
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
        d_c = (self._state_or_zeros(grad_c_n, "grad_c_n", (D * L, B, H), batched, packing)
               if self._has_cell else None)
        self._cache = None
        self.mark_updated()  # (an optimiser step follows: the next forward packs anew)
        d_out = packing.pack(self._from_user_layout(g, batched))
        state_grads = [None] * (L * D)
        for layer in range(L - 1, -1, -1):
            layer_in, mask = state["cache"][layer]["layer_in"], state["cache"][layer]["mask"]
            stored = state["cache"][layer]["directions"]
            results = self._each_direction(
                B, lambda d, threads, cancel: self._run_backward(
                    layer, d, layer_in, packing, d_out, d_h[layer * D + d],
                    _at(d_c, layer * D + d), stored[d], return_state_grads, threads, cancel,
                    state["precision"]))
            d_in = results[0][0]
            for d, (d_reverse, steps) in enumerate(results):
                if d:
                    d_in += d_reverse
                if return_state_grads:
                    state_grads[layer * D + d] = {
                        name: self._to_user_layout(packing.unpack(a), batched)
                        for name, a in zip(("h", "c"), steps) if a is not None}
            if mask is not None:
                d_in *= mask
            d_out = d_in
        d_h = packing.unsort_state(d_h)
        d_c = d_c if d_c is None else packing.unsort_state(d_c)
        if not batched:
            d_h, d_c = d_h[:, 0], _at(d_c, (slice(None), 0))
        self.grad_hx = (d_h, d_c) if self._has_cell else d_h
        grad_x = self._to_user_layout(packing.unpack(d_out), batched)
        return (grad_x, state_grads) if return_state_grads else grad_x

    def _run_backward(self, layer, direction, layer_in, packing, d_out, d_h, d_c, stored,
                      keep_steps, threads, cancel, precision):
        """One layer-direction's BPTT through the engine, its products at the training
        forward's ``precision``; returns dL/d(its input) and, with keep_steps, (dL/dh_t,
        dL/dc_t or None) of every step (packed), and adds its parameter gradients into
        ``grads``. Runs of steps go from the last step back (the reverse direction: from the
        first)."""
        sfx, w_ih, w_hh, _, _, w_hr = self._layer_weights[layer, direction]
        g, P = self.grads, self.output_size
        grads = (g["weight_ih" + sfx], g["weight_hh" + sfx], g.get("bias_ih" + sfx),
                 g.get("bias_hh" + sfx), g.get("weight_hr" + sfx))
        d_in = np.zeros_like(layer_in)
        N = packing.n_rows
        steps = ((np.zeros((N, P), self.dtype),
                  np.zeros((N, self.hidden_size), self.dtype) if self._has_cell else None)
                 if keep_steps else (None, None))
        workspace, _ = self._workspace(layer, direction)
        runs = packing.runs(self._call_rows[layer][True])
        if len(runs) == 1:  # one call, no slices (a small call's cost is mostly its overhead)
            backward_layer(layer_in, w_ih, w_hh, w_hr, packing.batch_sizes, packing.offsets,
                           d_out, direction * P, bool(direction), d_h, d_c, *stored[:4], d_in,
                           *grads, threads, workspace, Prepared.PACK, True, self._kind, stored[4],
                           *steps, precision)
        for i, (batch_sizes, offsets, r0, r1) in enumerate(
                (runs if direction else runs[::-1]) if len(runs) > 1 else []):
            if cancel is not None and cancel.is_set():
                return d_in, steps
            b, part = batch_sizes[0], [_at(a, slice(r0, r1)) for a in stored + steps]
            backward_layer(layer_in[r0:r1], w_ih, w_hh, w_hr, batch_sizes, offsets,
                           d_out[r0:r1], direction * P, bool(direction), d_h[:b],
                           _at(d_c, slice(0, b)), *part[:4], d_in[r0:r1], *grads, threads,
                           workspace, Prepared.PACKED if i > 0 else Prepared.PACK,
                           i == len(runs) - 1, self._kind, *part[4:], precision,
                           packing.batch_sizes[0])
        self._workspaces[layer, direction] = (workspace, None)
        self._spare[layer, direction] = stored
        return d_in, steps

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
        backward (_stored_shapes, inputs, dropout masks)."""
        D, P, L = self.num_directions, self.output_size, self.num_layers
        per_row = self.input_size + 3 * D * P
        if training:
            stored = sum(shape[1] for shape in self._stored_shapes(1).values())
            per_row += L * D * stored + 2 * (L - 1) * D * P
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
        """Checked h_0 and (LSTM) c_0, else None, as fresh arrays in packed (sorted) order, for
        the engine to update. hx is (h_0, c_0) for the LSTM, h_0 for the others."""
        L = self.num_directions * self.num_layers
        shapes = [("h_0", (L, B, self.output_size))]
        if self._has_cell:
            shapes.append(("c_0", (L, B, self.hidden_size)))
        if hx is None:
            states = [np.zeros(shape, self.dtype) for _, shape in shapes]
        else:
            if self._has_cell and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
                raise ValueError("hx must be a tuple (h_0, c_0)")
            states = [self._checked_state(a, f"hx {name}", shape, batched, packing)
                      for (name, shape), a in zip(shapes, hx if self._has_cell else [hx])]
        return states[0], (states[1] if self._has_cell else None)

    def _checked_state(self, a, name, shape, batched, packing):
        """A state array (h_0, c_0, or its gradient) of `shape` (no B axis when unbatched),
        finite, in packed order."""
        a = as_float_array(a, name, self.dtype)
        want = shape if batched else (shape[0], shape[2])
        if a.shape != want:
            raise ValueError(f"{name} must have shape {want}, got {a.shape}")
        check_finite(a, name)
        return packing.sort_state(a if batched else a[:, None, :])

    def _state_or_zeros(self, a, name, shape, batched, packing):
        if a is None:
            return np.zeros(shape, self.dtype)
        return self._checked_state(a, name, shape, batched, packing)


class HiddenStateLayer(RecurrentLayer):
    """A recurrent layer whose state is h alone (GRU, RNN): ``forward`` takes ``hx=h_0`` and
    returns ``(output, h_n)``."""

    _has_cell = False

    def forward(self, x, hx=None, lengths=None, training=False, return_gates=False,
                precision=None):
        """Run the layer over a batch of sequences.

        Parameters
        ----------
        x : array-like of shape (T, B, input_size), (B, T, input_size) or (T, input_size)
            Time-major input, batch-first when ``batch_first``, or one unbatched sequence.
        hx : array-like of shape (D*num_layers, B, hidden_size), optional
            The initial state h_0 (no B axis for unbatched input); zeros when None.
        lengths : array-like of int, shape (B,), optional
            Valid steps of each sequence, in ``[1, T]``; later steps are padding (see
            :meth:`lstm_fast.LSTM.forward`).
        training : bool, default=False
            Keep what ``backward`` needs and apply ``dropout`` between layers.
        return_gates : bool, default=False
            Also return, per layer-direction (index ``layer * D + direction``, h_n's order), a
            dict of every step's gates and state, each ``(T, B, hidden_size)`` in the layout of
            ``output``, 0 at padded steps: the GRU's ``"r", "z", "n", "h"``, the RNN's ``"h"``.
        precision : {None, "bfloat16", "int8"}, default=None
            The precision of the products (see :meth:`lstm_fast.LSTM.forward`).

        Returns
        -------
        output : ndarray of shape (T, B, D*hidden_size) (batch-first or unbatched like ``x``)
        h_n : ndarray shaped like ``h_0``
            Each sequence's state after its last valid step.
        gates : list of dict, only with ``return_gates``
        """
        output, h_n, _, gates = self._forward_checked(x, hx, lengths, training, return_gates,
                                                      precision)
        return (output, h_n, gates) if return_gates else (output, h_n)

    __call__ = forward

    def backward(self, grad_output, grad_h_n=None, return_state_grads=False):
        """Backpropagate through the latest ``training=True`` forward (once).

        Parameters
        ----------
        grad_output : array-like shaped like that forward's ``output``
            dL/doutput; entries at padded steps are ignored.
        grad_h_n : array-like shaped like ``h_n``, optional
            dL/dh_n; zeros when None.
        return_state_grads : bool, default=False
            Also return, per layer-direction, ``{"h": dL/dh_t}`` for every step from the BPTT
            itself, ``(T, B, hidden_size)`` like the output, 0 at padded steps.

        Returns
        -------
        grad_x : ndarray shaped like that forward's ``x``
            dL/dx. Parameter gradients are ADDED into ``grads``; dL/dh_0 is stored in
            ``grad_hx``.
        state_grads : list of dict, only with ``return_state_grads``
        """
        return self._backward_checked(grad_output, grad_h_n, None, return_state_grads)


def param_shapes(input_size, hidden_size, num_layers=1, bias=True, bidirectional=False,
                 proj_size=0, gates=4):
    """The parameters of such a layer, in ``state_dict`` order: ``{name: shape}``; ``gates``
    is the cell's gate blocks (LSTM 4, GRU 3, RNN 1)."""
    H, P, D = hidden_size, proj_size or hidden_size, 2 if bidirectional else 1
    shapes = {}
    for layer in range(num_layers):
        for direction in range(D):
            sfx = f"_l{layer}" + ("_reverse" if direction else "")
            shapes["weight_ih" + sfx] = (gates * H, input_size if layer == 0 else D * P)
            shapes["weight_hh" + sfx] = (gates * H, P)
            if bias:
                shapes["bias_ih" + sfx] = (gates * H,)
                shapes["bias_hh" + sfx] = (gates * H,)
            if proj_size:
                shapes["weight_hr" + sfx] = (P, H)
    return shapes


def _at(a, index):
    """a[index], or None for no array (the cell state of a cell without one)."""
    return None if a is None else a[index]


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
