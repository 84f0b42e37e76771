"""Plain NumPy LSTM, GRU and RNN, forward and backward: the reference every kernel is tested
against.

It works on padded time-major arrays with a (T, B) validity mask, one time step at a time, exactly
as the equations read (only the input projection is hoisted out of the loop); it shares no code with
the engine and is the NumPy peer of the benchmark. Parameters are a dict with PyTorch's names
and layouts (see ``LSTM.state_dict``). ``cell`` is "lstm", "gru", "rnn_tanh" or "rnn_relu";
the cells without a cell state take and return ``c`` arrays of zero width.

``precision="bfloat16"`` emulates the engine's reduced-precision inference: every product's
operands rounded to bfloat16 as :func:`round_bfloat16` rounds them, the products summed exactly
(float64), the rest in the arrays' dtype; ``precision="int8"`` quantises them instead, as
:func:`quantize_int8` does (a scale per row of the input, per output channel of the weights).
:func:`reference_backward` after a ``"bfloat16"`` forward emulates mixed-precision training: the
gradients of the pre-activations rounded to bfloat16 once (the bias gradients sum those), and
every product's operands rounded, the sums exact.
"""

import numpy as np

__all__ = ["reference_forward", "reference_backward", "round_bfloat16", "quantize_int8"]


def round_bfloat16(a):
    """``a`` rounded to bfloat16, as float32: to nearest even, as the CPU's vcvtne2ps2bf16 does
    (subnormals to a zero of their sign, NaN kept quiet).

    Parameters
    ----------
    a : array-like

    Returns
    -------
    ndarray of float32, of a's shape, whose values are bfloat16 numbers
    """
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    top = np.uint32(0xFFFF0000)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & top
    rounded = np.where((u & np.uint32(0x7F800000)) == 0, u & np.uint32(0x80000000), rounded)
    rounded = np.where((u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000),
                       (u | np.uint32(0x00400000)) & top, rounded)
    return rounded.astype(np.uint32).view(np.float32)


def quantize_int8(a):
    """Rows of ``a`` quantised as the engine's int8 products quantise them: each row (the last
    axis) with the scale max|row| / 127 in float32, to nearest even, into [-127, 127]; a zero row
    has scale 0.

    Parameters
    ----------
    a : array-like

    Returns
    -------
    q : ndarray of float64, a's shape, integers
    scales : ndarray of float32, a's shape without its last axis
    """
    a = np.asarray(a, dtype=np.float32)
    scales = (np.abs(a).max(axis=-1) / np.float32(127)).astype(np.float32)
    safe = np.where(scales == 0, np.float32(1), scales)
    q = np.clip(np.rint(a / safe[..., None]), -127, 127)
    return np.where(scales[..., None] == 0, 0, q).astype(np.float64), scales


def _int8_product(a, w):
    qa, sa = quantize_int8(a)
    qw, sw = quantize_int8(w)  # rows of w (G x K): the output channels
    return (sa[..., None].astype(np.float64) * (qa @ qw.T) * sw.astype(np.float64)).astype(a.dtype)


def _product(precision):
    """a @ w.T at `precision`: exactly as written; with a and w rounded to bfloat16; or
    quantised to int8 (the sums in float64, returned in a's dtype)."""
    if precision is None:
        return lambda a, w: a @ w.T
    if precision == "int8":
        return _int8_product
    return lambda a, w: (round_bfloat16(a).astype(np.float64)
                         @ round_bfloat16(w).astype(np.float64).T).astype(a.dtype)


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _names(layer, direction):
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    return {k: k + suffix for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")}


# One step of each cell: (x W_ih^T + b_ih, h W_hh^T + b_hh, h_{t-1}, c_{t-1}) -> (r_t, c_t, what
# its backward needs); r_t is h_t before the LSTM's projection.

def _lstm_step(xp, hp, h, c):
    a = xp + hp
    H = a.shape[1] // 4
    i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
    g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new, (i, f, g, o, c, c_new)


def _gru_step(xp, hp, h, c):
    H = h.shape[1]
    r = _sigmoid(xp[:, :H] + hp[:, :H])
    z = _sigmoid(xp[:, H:2 * H] + hp[:, H:2 * H])
    n = np.tanh(xp[:, 2 * H:] + r * hp[:, 2 * H:])
    return (1 - z) * n + z * h, c, (r, z, n, h, hp[:, 2 * H:])


def _rnn_step(relu):
    def step(xp, hp, h, c):
        a = xp + hp
        h_new = np.maximum(a, 0) if relu else np.tanh(a)
        return h_new, c, (h_new,)
    return step


# Their backward: (dL/dr_t, dL/dc_t, record) -> (dL/d(x W_ih^T + b_ih), dL/d(h W_hh^T + b_hh),
# the direct part of dL/dh_{t-1}, dL/dc_{t-1}).

def _lstm_step_back(dr, dc, record):
    i, f, g, o, c_prev, c_new = record
    tc = np.tanh(c_new)
    dc_t = dc + dr * o * (1 - tc * tc)
    da = np.concatenate([dc_t * g * i * (1 - i), dc_t * c_prev * f * (1 - f),
                         dc_t * i * (1 - g * g), dr * tc * o * (1 - o)], axis=1)
    return da, da, 0, dc_t * f


def _gru_step_back(dh, dc, record):
    r, z, n, h_prev, hp_n = record
    da_n = dh * (1 - z) * (1 - n * n)
    da_r = da_n * hp_n * r * (1 - r)
    da_z = dh * (h_prev - n) * z * (1 - z)
    return (np.concatenate([da_r, da_z, da_n], axis=1),
            np.concatenate([da_r, da_z, da_n * r], axis=1), dh * z, dc)


def _rnn_step_back(relu):
    def step_back(dh, dc, record):
        (h,) = record
        da = dh * ((h > 0) if relu else (1 - h * h))
        return da, da, 0, dc
    return step_back


_CELLS = {"lstm": (_lstm_step, _lstm_step_back), "gru": (_gru_step, _gru_step_back),
          "rnn_tanh": (_rnn_step(False), _rnn_step_back(False)),
          "rnn_relu": (_rnn_step(True), _rnn_step_back(True))}


def reference_forward(params, x, h0, c0, lengths, num_layers, bidirectional, dropout_masks=None,
                      cell="lstm", precision=None):
    """Forward pass.

    Parameters
    ----------
    params : dict of ndarray
        PyTorch-named weights.
    x : ndarray of shape (T, B, I)
    h0, c0 : ndarray of shape (D*L, B, P) and (D*L, B, H) (c0 (D*L, B, 0) without a cell state)
    lengths : ndarray of shape (B,)
    num_layers : int
    bidirectional : bool
    dropout_masks : list or None
        ``dropout_masks[l]`` (T, B, D*P) multiplies layer ``l``'s input for ``l >= 1``.
    cell : {"lstm", "gru", "rnn_tanh", "rnn_relu"}, default="lstm"
    precision : {None, "bfloat16", "int8"}, default=None
        The products' precision (see the module's docstring).

    Returns
    -------
    out : ndarray of shape (T, B, D*P), zero at padded steps
    h_n, c_n : ndarray like h0, c0
    cache : dict
        What :func:`reference_backward` needs.
    """
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    step, matmul = _CELLS[cell][0], _product(precision)
    mask = np.arange(T)[:, None] < np.asarray(lengths)[None, :]
    h_n, c_n = np.zeros_like(h0), np.zeros_like(c0)
    layer_in, steps = x, []
    for layer in range(num_layers):
        if layer > 0 and dropout_masks is not None and dropout_masks[layer] is not None:
            layer_in = layer_in * dropout_masks[layer]
        outs = []
        for direction in range(D):
            n = _names(layer, direction)
            w_hh, w_hr = params[n["weight_hh"]], params.get(n["weight_hr"])
            h, c = h0[layer * D + direction].copy(), c0[layer * D + direction].copy()
            out = np.zeros((T, B, w_hh.shape[1]), dtype=x.dtype)
            record = []
            # b_hh joins b_ih in the hoisted projection, but for the GRU: r scales it
            b_ih, b_hh = params.get(n["bias_ih"], 0), params.get(n["bias_hh"], 0)
            if cell != "gru":
                b_ih, b_hh = b_ih + b_hh, 0
            x_proj = matmul(layer_in, params[n["weight_ih"]]) + b_ih
            for t in (range(T - 1, -1, -1) if direction else range(T)):
                m = mask[t][:, None]
                r, c_new, saved = step(x_proj[t], matmul(h, w_hh) + b_hh, h, c)
                h_new = matmul(r, w_hr) if w_hr is not None else r
                record.append((t, layer_in[t], h, saved, r))
                out[t] = np.where(m, h_new, 0)
                h, c = np.where(m, h_new, h), np.where(m, c_new, c)
            h_n[layer * D + direction], c_n[layer * D + direction] = h, c
            steps.append(record)
            outs.append(out)
        layer_in = np.concatenate(outs, axis=2)
    cache = dict(mask=mask, steps=steps, x=x, num_layers=num_layers, D=D,
                 dropout_masks=dropout_masks, cell=cell, c_width=c0.shape[2],
                 precision=precision)
    return layer_in, h_n, c_n, cache


def reference_backward(params, cache, grad_out, grad_h_n=None, grad_c_n=None):
    """Backward pass (BPTT) of :func:`reference_forward`.

    Returns
    -------
    grad_x : ndarray like x
    grads : dict of ndarray, keyed like params
    grad_h0, grad_c0 : ndarray like h0, c0
    """
    mask, D, L = cache["mask"], cache["D"], cache["num_layers"]
    step_back = _CELLS[cache["cell"]][1]
    precision = cache.get("precision")
    if precision == "int8":
        raise ValueError("reference_backward: an int8 forward is for inference only")
    matmul = _product(precision)  # a @ w.T
    rounded = round_bfloat16 if precision == "bfloat16" else (lambda a: a)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    P, B = grad_out.shape[2] // D, mask.shape[1]
    d_layer_out = grad_out
    grad_h0, grad_c0 = [None] * (L * D), [None] * (L * D)
    for layer in range(L - 1, -1, -1):
        d_in = None
        for direction in range(D):
            k = layer * D + direction
            n = _names(layer, direction)
            w_ih, w_hh = params[n["weight_ih"]], params[n["weight_hh"]]
            w_hr = params.get(n["weight_hr"])
            record = cache["steps"][k]
            dh = np.zeros((B, P), grad_out.dtype) if grad_h_n is None else grad_h_n[k].copy()
            dc = (np.zeros((B, cache["c_width"]), grad_out.dtype) if grad_c_n is None
                  else grad_c_n[k].copy())
            dout = d_layer_out[:, :, direction * P:(direction + 1) * P]
            if d_in is None:
                d_in = np.zeros((mask.shape[0],) + record[0][1].shape, dtype=grad_out.dtype)
            for t, x_t, h_prev, saved, r in reversed(record):
                m = mask[t][:, None]
                dh_t = dh + np.where(m, dout[t], 0)
                if w_hr is not None:
                    grads[n["weight_hr"]] += matmul(np.where(m, dh_t, 0).T, r.T)
                    dr = matmul(dh_t, w_hr.T)
                else:
                    dr = dh_t
                dxp, dhp, direct, dc_prev = step_back(dr, dc, saved)
                dxp, dhp = rounded(np.where(m, dxp, 0)), rounded(np.where(m, dhp, 0))
                grads[n["weight_ih"]] += matmul(dxp.T, x_t.T)
                grads[n["weight_hh"]] += matmul(dhp.T, h_prev.T)
                if n["bias_ih"] in grads:
                    grads[n["bias_ih"]] += dxp.sum(0)
                    grads[n["bias_hh"]] += dhp.sum(0)
                d_in[t] += matmul(dxp, w_ih.T)
                dh = np.where(m, matmul(dhp, w_hh.T) + direct, dh)
                dc = np.where(m, dc_prev, dc)
            grad_h0[k], grad_c0[k] = dh, dc
        masks = cache["dropout_masks"]
        if layer > 0 and masks is not None and masks[layer] is not None:
            d_in = d_in * masks[layer]
        d_layer_out = d_in
    return d_layer_out, grads, np.stack(grad_h0), np.stack(grad_c0)
