"""Write the golden files: inputs, weights, and torch.nn.LSTM's outputs and gradients.

Run from the repository root with torch installed:  python tests/golden/make_golden.py
The files let test_golden.py check parity with torch on machines without torch.
"""

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from torch_oracle import torch_forward_backward  # noqa: E402

import lstm_fast  # noqa: E402

CASES = {
    "bidir2_lengths_f64": (dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
                                proj_size=0, bias=True), np.float64, [5, 2, 6]),
    "proj_f32": (dict(input_size=4, hidden_size=5, num_layers=1, bidirectional=False,
                      proj_size=2, bias=True), np.float32, None),
    "bidir_proj_lengths_f64": (dict(input_size=2, hidden_size=5, num_layers=2, bidirectional=True,
                                    proj_size=3, bias=False), np.float64, [1, 6, 3]),
}


def main():
    rng = np.random.default_rng(2024)
    for name, (config, dtype, lengths) in CASES.items():
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


if __name__ == "__main__":
    main()
