"""The process that runs fuzz cases for test_fuzz.py, so that a crash of compiled code fails one
case instead of taking the test run down.

It reads cases from standard input and writes each result to standard output, both pickled
with an 8-byte length in front: ("ok", value) or ("raised", exception type name, message).
"""

import pickle
import struct
import sys
import warnings

import numpy as np


def run(case):
    """Run one case (a dict made by test_fuzz.py's strategies) and return its value."""
    import lstm_fast

    target = case["target"]
    if target in ("forward", "backward", "load_state_dict"):
        lstm = _layer(lstm_fast, case.get("cell", "lstm"), case["config"])
        if case.get("run_rows"):  # runs of steps of so many rows, one engine call each
            lstm._call_rows = [(case["run_rows"],) * 2] * lstm.num_layers
        state = {k: v.copy() for k, v in lstm.state_dict().items()}
        if target == "forward":
            out, final = lstm.forward(case["x"], hx=case["hx"], lengths=case["lengths"],
                                      training=case["training"])
            h, c = final if isinstance(final, tuple) else (final, None)
            if case["training"]:
                lstm.backward(np.ones_like(out))
            return dict(state=state, out=out, h=h, c=c)
        if target == "backward":
            out, (h, c) = lstm.forward(case["x"], lengths=case["lengths"], training=True)
            grad_x = lstm.backward(case["grad_output"], case["grad_h_n"], case["grad_c_n"])
            return dict(state=state, out_shape=out.shape, grad_x=grad_x)
        lstm.load_state_dict(case["state_dict"])
        return dict(state=lstm.state_dict())
    if target == "estimator":
        Estimator = getattr(lstm_fast, case["estimator"])
        est = Estimator(**case["params"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if case["partial"]:
                kwargs = {"classes": case["classes"]} if case["classes"] is not None else {}
                est.partial_fit(case["X"], case["y"], **kwargs)
            else:
                est.fit(case["X"], case["y"])
            return est.predict(case["X_predict"])
    if target == "engine":
        from lstm_fast import _lstm
        getattr(_lstm, case["function"])(**case["arguments"])
        return None
    raise ValueError(f"unknown target {target!r}")


def _layer(lstm_fast, cell, config):
    """The layer of a case: an LSTM, or a GRU or RNN (whose configs have proj_size 0)."""
    if cell == "lstm":
        return lstm_fast.LSTM(**config, random_state=0)
    config = {k: v for k, v in config.items() if k != "proj_size"}
    if cell == "gru":
        return lstm_fast.GRU(**config, random_state=0)
    return lstm_fast.RNN(**config, nonlinearity=cell[4:], random_state=0)


def _read(stream):
    header = stream.read(8)
    if len(header) < 8:
        return None
    (size,) = struct.unpack("<Q", header)
    return pickle.loads(stream.read(size))


def _write(stream, value):
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed goes to standard error, not into the protocol
    while (case := _read(stdin)) is not None:
        try:
            result = ("ok", run(case))
        except Exception as exc:  # noqa: BLE001 - every exception is the case's result
            result = ("raised", type(exc).__name__, str(exc))
        _write(stdout, result)


if __name__ == "__main__":
    main()
