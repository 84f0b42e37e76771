"""A plain NumPy LSTM, forward and backward: the reference every kernel is tested against.

It works on padded time-major arrays with a (T, B) validity mask, one time step at a time, exactly
as the equations read (only the input projection is hoisted out of the loop); it shares no code with
the engine and is the NumPy peer of the benchmark. Parameters are a dict with PyTorch's names
and layouts (see ``LSTM.state_dict``).
"""

import numpy as np

__all__ = ["reference_forward", "reference_backward"]


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _names(layer, direction):
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    return {k: k + suffix for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")}


def reference_forward(params, x, h0, c0, lengths, num_layers, bidirectional, dropout_masks=None):
    """Forward pass.

    Parameters
    ----------
    params : dict of ndarray
        PyTorch-named weights.
    x : ndarray of shape (T, B, I)
    h0, c0 : ndarray of shape (D*L, B, P) and (D*L, B, H)
    lengths : ndarray of shape (B,)
    num_layers : int
    bidirectional : bool
    dropout_masks : list or None
        ``dropout_masks[l]`` (T, B, D*P) multiplies layer ``l``'s input for ``l >= 1``.

    Returns
    -------
    out : ndarray of shape (T, B, D*P), zero at padded steps
    h_n, c_n : ndarray like h0, c0
    cache : dict
        What :func:`reference_backward` needs.
    """
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    mask = np.arange(T)[:, None] < np.asarray(lengths)[None, :]
    h_n, c_n = np.zeros_like(h0), np.zeros_like(c0)
    layer_in, steps = x, []
    for layer in range(num_layers):
        if layer > 0 and dropout_masks is not None and dropout_masks[layer] is not None:
            layer_in = layer_in * dropout_masks[layer]
        outs = []
        for direction in range(D):
            n = _names(layer, direction)
            w_ih, w_hh = params[n["weight_ih"]], params[n["weight_hh"]]
            bias = params.get(n["bias_ih"], 0) + params.get(n["bias_hh"], 0)
            w_hr = params.get(n["weight_hr"])
            H = w_hh.shape[0] // 4
            h, c = h0[layer * D + direction].copy(), c0[layer * D + direction].copy()
            out = np.zeros((T, B, w_hh.shape[1]), dtype=x.dtype)
            record = []
            x_proj = layer_in @ w_ih.T + bias
            for t in (range(T - 1, -1, -1) if direction else range(T)):
                m = mask[t][:, None]
                a = x_proj[t] + h @ w_hh.T
                i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
                g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
                c_new = f * c + i * g
                r = o * np.tanh(c_new)
                h_new = r @ w_hr.T if w_hr is not None else r
                record.append((t, layer_in[t], h, c, i, f, g, o, c_new, r))
                out[t] = np.where(m, h_new, 0)
                h, c = np.where(m, h_new, h), np.where(m, c_new, c)
            h_n[layer * D + direction], c_n[layer * D + direction] = h, c
            steps.append(record)
            outs.append(out)
        layer_in = np.concatenate(outs, axis=2)
    cache = dict(mask=mask, steps=steps, x=x, num_layers=num_layers, D=D,
                 dropout_masks=dropout_masks)
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
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    P = grad_out.shape[2] // D
    d_layer_out = grad_out
    grad_h0, grad_c0 = [None] * (L * D), [None] * (L * D)
    for layer in range(L - 1, -1, -1):
        d_in = None
        for direction in range(D):
            k = layer * D + direction
            n = _names(layer, direction)
            w_ih, w_hh = params[n["weight_ih"]], params[n["weight_hh"]]
            w_hr = params.get(n["weight_hr"])
            H = w_hh.shape[0] // 4
            record = cache["steps"][k]
            B = mask.shape[1]
            dh = np.zeros((B, P), grad_out.dtype) if grad_h_n is None else grad_h_n[k].copy()
            dc = np.zeros((B, H), grad_out.dtype) if grad_c_n is None else grad_c_n[k].copy()
            dout = d_layer_out[:, :, direction * P:(direction + 1) * P]
            if d_in is None:
                d_in = np.zeros((mask.shape[0],) + record[0][1].shape, dtype=grad_out.dtype)
            for t, x_t, h_prev, c_prev, i, f, g, o, c_new, r in reversed(record):
                m = mask[t][:, None]
                dh_t = dh + np.where(m, dout[t], 0)
                if w_hr is not None:
                    grads[n["weight_hr"]] += (np.where(m, dh_t, 0)).T @ r
                    dr = dh_t @ w_hr
                else:
                    dr = dh_t
                tc = np.tanh(c_new)
                dc_t = dc + dr * o * (1 - tc * tc)
                da = np.concatenate([dc_t * g * i * (1 - i), dc_t * c_prev * f * (1 - f),
                                     dc_t * i * (1 - g * g), dr * tc * o * (1 - o)], axis=1)
                da = np.where(m, da, 0)
                grads[n["weight_ih"]] += da.T @ x_t
                grads[n["weight_hh"]] += da.T @ h_prev
                if n["bias_ih"] in grads:
                    grads[n["bias_ih"]] += da.sum(0)
                    grads[n["bias_hh"]] += da.sum(0)
                d_in[t] += da @ w_ih
                dh = np.where(m, da @ w_hh, dh)
                dc = np.where(m, dc_t * f, dc)
            grad_h0[k], grad_c0[k] = dh, dc
        masks = cache["dropout_masks"]
        if layer > 0 and masks is not None and masks[layer] is not None:
            d_in = d_in * masks[layer]
        d_layer_out = d_in
    return d_layer_out, grads, np.stack(grad_h0), np.stack(grad_c0)
