"""Run torch.nn.LSTM, GRU or RNN with given weights on given inputs: the oracle for parity tests
and golden files."""

import numpy as np


def torch_forward_backward(config, state_dict, x, h0, c0, lengths, g_out, g_h, g_c):
    """Forward and backward through ``torch.nn.LSTM``; every array is time-major and batched.

    ``lengths`` (or None) goes through ``pack_padded_sequence(enforce_sorted=False)``.
    Returns a dict of NumPy arrays: out, h_n, c_n, grad_x, grad_h0, grad_c0 and parameter grads.
    """
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    dtype = torch.float64 if x.dtype == np.float64 else torch.float32
    lstm = torch.nn.LSTM(**config, dtype=dtype)
    lstm.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
                          state_dict.items()})
    tx = torch.tensor(x, requires_grad=True)
    th0 = torch.tensor(h0, requires_grad=True)
    tc0 = torch.tensor(c0, requires_grad=True)
    if lengths is None:
        out, (h_n, c_n) = lstm(tx, (th0, tc0))
    else:
        packed = pack_padded_sequence(tx, torch.as_tensor(lengths), enforce_sorted=False)
        out, (h_n, c_n) = lstm(packed, (th0, tc0))
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
    loss = ((out * torch.from_numpy(g_out)).sum() + (h_n * torch.from_numpy(g_h)).sum()
            + (c_n * torch.from_numpy(g_c)).sum())
    loss.backward()
    result = dict(out=out.detach().numpy(), h_n=h_n.detach().numpy(), c_n=c_n.detach().numpy(),
                  grad_x=tx.grad.numpy(), grad_h0=th0.grad.numpy(), grad_c0=tc0.grad.numpy())
    result.update({"grad_" + k: p.grad.numpy() for k, p in lstm.named_parameters()})
    return result


def torch_cell_forward_backward(cell, config, state_dict, x, h0, lengths, g_out, g_h):
    """As torch_forward_backward, for ``torch.nn.GRU`` (cell "gru") or ``torch.nn.RNN`` ("rnn_tanh",
    "rnn_relu"): one state h. Returns out, h_n, grad_x, grad_h0 and parameter grads."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    dtype = torch.float64 if x.dtype == np.float64 else torch.float32
    if cell == "gru":
        layer = torch.nn.GRU(**config, dtype=dtype)
    else:
        layer = torch.nn.RNN(**config, nonlinearity=cell[4:], dtype=dtype)
    layer.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
                           state_dict.items()})
    tx = torch.tensor(x, requires_grad=True)
    th0 = torch.tensor(h0, requires_grad=True)
    if lengths is None:
        out, h_n = layer(tx, th0)
    else:
        packed = pack_padded_sequence(tx, torch.as_tensor(lengths), enforce_sorted=False)
        out, h_n = layer(packed, th0)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
    loss = (out * torch.from_numpy(g_out)).sum() + (h_n * torch.from_numpy(g_h)).sum()
    loss.backward()
    result = dict(out=out.detach().numpy(), h_n=h_n.detach().numpy(), grad_x=tx.grad.numpy(),
                  grad_h0=th0.grad.numpy())
    result.update({"grad_" + k: p.grad.numpy() for k, p in layer.named_parameters()})
    return result
