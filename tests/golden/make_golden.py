"""Write the golden files: inputs, weights, and torch.nn.LSTM's (GRU's, RNN's) outputs and
gradients.

Run from the repository root with torch installed:  python tests/golden/make_golden.py [NAME ...]
(every case without names). The files let test_golden.py check parity with torch on machines
without torch.
"""

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from torch_oracle import torch_cell_forward_backward, torch_forward_backward  # noqa: E402

import lstm_fast  # noqa: E402

CASES = {
    "bidir2_lengths_f64": (dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
                                proj_size=0, bias=True), np.float64, [5, 2, 6]),
    "proj_f32": (dict(input_size=4, hidden_size=5, num_layers=1, bidirectional=False,
                      proj_size=2, bias=True), np.float32, None),
    "bidir_proj_lengths_f64": (dict(input_size=2, hidden_size=5, num_layers=2, bidirectional=True,
                                    proj_size=3, bias=False), np.float64, [1, 6, 3]),
}

# The other cells: (cell, layer arguments, dtype, lengths); a generator of their own.
CELL_CASES = {
    "gru_bidir2_lengths_f64": ("gru", dict(input_size=3, hidden_size=4, num_layers=2,
                                           bidirectional=True, bias=True), np.float64, [5, 2, 6]),
    "gru_f32": ("gru", dict(input_size=4, hidden_size=5, num_layers=1, bidirectional=False,
                            bias=True), np.float32, None),
    "rnn_tanh_bidir_lengths_f64": ("rnn_tanh", dict(input_size=2, hidden_size=5, num_layers=2,
                                                    bidirectional=True, bias=False),
                                   np.float64, [1, 6, 3]),
    "rnn_relu_f32": ("rnn_relu", dict(input_size=3, hidden_size=4, num_layers=2,
                                      bidirectional=False, bias=True), np.float32, [6, 4, 2]),
}


def main(names):
    rng = np.random.default_rng(2024)
    for name, (config, dtype, lengths) in CASES.items():
        if names and name not in names:
            continue
        lstm = lstm_fast.LSTM(**config, dtype=dtype, random_state=0)
        T, B = 6, 3
        k = lstm.num_directions * lstm.num_layers
        arrays = dict(
            x=rng.standard_normal((T, B, config["input_size"])),
            h0=rng.standard_normal((k, B, lstm.output_size)),
            c0=rng.standard_normal((k, B, lstm.hidden_size)),
            g_out=rng.standard_normal((T, B, lstm.num_directions * lstm.output_size)),
            g_h=rng.standard_normal((k, B, lstm.output_size)),
            g_c=rng.standard_normal((k, B, lstm.hidden_size)),
        )
        arrays = {key: a.astype(dtype) for key, a in arrays.items()}
        weights = {key: rng.standard_normal(w.shape).astype(dtype) * 0.5
                   for key, w in lstm.state_dict().items()}
        lens = None if lengths is None else np.array(lengths)
        result = torch_forward_backward(config, weights, arrays["x"], arrays["h0"], arrays["c0"],
                                        lens, arrays["g_out"], arrays["g_h"], arrays["g_c"])
        np.savez_compressed(
            os.path.join(HERE, name + ".npz"),
            config=json.dumps(dict(config, dtype=np.dtype(dtype).name, lengths=lengths)),
            **arrays, **{"weight:" + k: v for k, v in weights.items()},
            **{"torch:" + k: v for k, v in result.items()})
    rng = np.random.default_rng(2026)
    for name, (cell, config, dtype, lengths) in CELL_CASES.items():
        layer = (lstm_fast.GRU(**config, dtype=dtype) if cell == "gru" else
                 lstm_fast.RNN(**config, nonlinearity=cell[4:], dtype=dtype))
        T, B, k = 6, 3, layer.num_directions * layer.num_layers
        arrays = dict(x=rng.standard_normal((T, B, config["input_size"])),
                      h0=rng.standard_normal((k, B, layer.hidden_size)),
                      g_out=rng.standard_normal((T, B, layer.num_directions * layer.hidden_size)),
                      g_h=rng.standard_normal((k, B, layer.hidden_size)))
        arrays = {key: a.astype(dtype) for key, a in arrays.items()}
        weights = {key: rng.standard_normal(w.shape).astype(dtype) * 0.5
                   for key, w in layer.state_dict().items()}
        if names and name not in names:
            continue
        lens = None if lengths is None else np.array(lengths)
        result = torch_cell_forward_backward(cell, config, weights, arrays["x"], arrays["h0"],
                                             lens, arrays["g_out"], arrays["g_h"])
        np.savez_compressed(
            os.path.join(HERE, name + ".npz"),
            config=json.dumps(dict(config, cell=cell, dtype=np.dtype(dtype).name,
                                   lengths=lengths)),
            **arrays, **{"weight:" + k: v for k, v in weights.items()},
            **{"torch:" + k: v for k, v in result.items()})


if __name__ == "__main__":
    main(sys.argv[1:])
