"""What a fitted estimator's recurrent layer does inside: its gates at every step, a summary of
them, and how the loss gradient flows back through the steps (the engine's own values, through
forward(return_gates=True) and backward(return_state_grads=True))."""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._heads import valid_steps
from ._sequences import check_sequences, naming

__all__ = ["IntrospectionMixin"]

# Sequences per engine call (bounds memory, whatever the data size): gate records hold every
# step's gates, several times the output's size.
_BATCH = 256

# The gate a summary is about, per cell: the LSTM's forget gate f and the GRU's update gate z
# keep the state (and its gradient) when near 1; the RNN has none, and its tanh's slope 1 - h^2
# is what its error is multiplied by at every step back.
_SUMMARY_GATE = {"lstm": "f", "gru": "z", "rnn": "1 - h^2"}


class IntrospectionMixin:
    """gate_activations, gate_summary and gradient_flow for the recurrent estimators."""

    def gate_activations(self, X):
        """The recurrent layer's gates and states at every step of ``X``.

        Parameters
        ----------
        X : sequences as for ``predict``

        Returns
        -------
        gates : list
            For array input, one dict per layer-direction (index ``layer * D + direction``) of
            arrays ``(n_samples, T, hidden_size)``, 0 at padded steps: the LSTM's ``"i", "f",
            "g", "o", "c"``, the GRU's ``"r", "z", "n", "h"``, the RNN's ``"h"``. For a list of
            sequences, a list with one such list per sequence, its arrays ``(T_i, hidden_size)``.
        """
        data, ragged = self._introspected(X)
        parts = [self._gates_of(data.take(index)) for index in _chunks(len(data))]
        records = [{name: np.concatenate([p[k][name] for p in parts]) for name in parts[0][k]}
                   for k in range(len(parts[0]))]
        if not ragged:
            return records
        lengths = data.lengths if data.lengths is not None else np.full(len(data),
                                                                        data.X.shape[1])
        return [[{name: a[i, :n] for name, a in record.items()} for record in records]
                for i, n in enumerate(lengths)]

    def gate_summary(self, X, threshold=0.9):
        """How much the gate that keeps the state stays open over ``X``'s valid steps.

        Parameters
        ----------
        X : sequences as for ``predict``
        threshold : float, default=0.9

        Returns
        -------
        summary : list of dict
            One per layer-direction: ``"gate"`` (the LSTM's forget gate ``"f"``, the GRU's
            update gate ``"z"``, for the RNN its slope ``"1 - h^2"``, by which its error is
            multiplied at each step back), ``"mean_per_unit"`` (hidden_size,),
            ``"mean_over_time"`` (T,) (over the sequences at that step), and
            ``"share_above"``: the share of valid steps and units above ``threshold``.
        """
        data, _ = self._introspected(X)
        valid = _valid(data)
        name = _SUMMARY_GATE[self.cell]
        totals, above = 0, 0  # per layer-direction: sums over sequences (T, H), counts > threshold
        for index in _chunks(len(data)):
            records = self._gates_of(data.take(index))
            m = valid[index][:, :, None]
            values = np.stack([np.where(m, 1 - r["h"] ** 2 if name == "1 - h^2" else r[name], 0)
                               for r in records])  # (layer-directions, n, T, H)
            totals = totals + values.sum(axis=1)
            above = above + (values > threshold).sum(axis=(1, 2, 3))
        counts = valid.sum(0)  # sequences at each step
        return [dict(gate=name, mean_per_unit=total.sum(0) / counts.sum(),
                     mean_over_time=total.mean(1) / np.maximum(counts, 1),
                     share_above=float(n_above) / (counts.sum() * total.shape[1]))
                for total, n_above in zip(totals, above)]

    def gradient_flow(self, X, y):
        """The norm of the loss gradient with respect to the state at every step.

        The loss is the training loss (without the L2 term) of the whole of ``X``, ``y``, its
        gradient the engine's BPTT; dropout is off. Plotted against the step, it shows how the
        error signal decays (or not) going back in time from the last step, where the output
        layer reads the state.

        Parameters
        ----------
        X : sequences as for ``fit``
        y : targets as for ``fit``

        Returns
        -------
        flow : list of dict
            One per layer-direction: ``"h"``, the norm of dL/dh_t over every sequence and unit,
            shape (T,), and for the LSTM ``"c"``, that of dL/dc_t.
        """
        data, _ = self._introspected(X)
        with naming("y"):
            targets = self._encoded(self._targets(data, y, False, False, None))
        n_rows = len(self._head.rows(targets, np.ones(len(data)), data)[0])
        squares, dropout = None, self.lstm_.dropout
        self.lstm_.dropout = 0.0
        try:
            for index in _chunks(len(data)):
                part = self._state_grads(data.take(index), targets[index], n_rows)
                part = [{k: (v.astype(np.float64) ** 2).sum(axis=(0, 2)) for k, v in g.items()}
                        for g in part]
                squares = part if squares is None else [
                    {k: total[k] + g[k] for k in g} for total, g in zip(squares, part)]
        finally:
            self.lstm_.dropout = dropout
            self.lstm_.zero_grad()
        return [{k: np.sqrt(v) for k, v in g.items()} for g in squares]

    def _introspected(self, X):
        """X checked and standardised like predict's, and whether it was a list of sequences."""
        check_is_fitted(self)
        ragged = isinstance(X, (list, tuple))
        data = check_sequences(self, X, reset=False, dtype=self.lstm_.dtype)
        return self._standardized(data), ragged

    def _gates_of(self, batch):
        with self._thread_limits():
            _, _, records = self.lstm_.forward(batch.X, lengths=batch.lengths, return_gates=True)
        return records

    def _state_grads(self, batch, targets, n_rows):
        """A batch's dL/dh_t (and dL/dc_t) per layer-direction, L the mean loss over the
        ``n_rows`` rows (sequences or valid steps) of the data the batch is part of."""
        lstm, head = self.lstm_, self._head
        with self._thread_limits():
            output, state = lstm.forward(batch.X, lengths=batch.lengths, training=True)
            features = head.features(lstm, output, state, batch)
            row_targets, _ = head.rows(targets, np.ones(len(batch)), batch)
            _, d_logits = self._loss_and_gradient(
                features @ self.coefs_[0] + self.intercepts_[0], row_targets)
            share = len(row_targets) / n_rows
            lstm.zero_grad()
            _, state_grads = lstm.backward(
                *head.backward_args(lstm, output, state, batch,
                                    share * d_logits @ self.coefs_[0].T),
                return_state_grads=True)
        return state_grads


def _chunks(n):
    return [np.arange(s, min(s + _BATCH, n)) for s in range(0, n, _BATCH)]


def _valid(data):
    """(n, T) mask of the valid steps."""
    mask = valid_steps(data)
    return np.ones(data.X.shape[:2], bool) if mask is None else mask
