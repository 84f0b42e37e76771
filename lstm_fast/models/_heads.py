"""What the output layer reads of the recurrent layer, and the targets it answers: the last
state of each sequence (many-to-one) or every valid step (per step).

A head turns a batch's forward results into the output layer's input rows, sends the gradient
of those rows back as the layer's ``backward`` arguments, and lays the batch's targets and
sample weights out as the same rows. Rows of a per-step head are the valid steps, sequence by
sequence (sequence 0's steps in order, then sequence 1's, ...)."""

import numpy as np

__all__ = ["LastState", "EveryStep"]


def _h_n(state):
    """h_n of a layer's final state: (h_n, c_n) for the LSTM, h_n for the others."""
    return state[0] if isinstance(state, tuple) else state


def valid_steps(batch):
    """(B, T) mask of the valid steps of a batch (a SequenceData; None: every step)."""
    if batch.lengths is None:
        return None
    return np.arange(batch.X.shape[1])[None, :] < batch.lengths[:, None]


class LastState:
    """The last layer's final hidden state, both directions side by side: one row a sequence,
    (B, D * P)."""

    def features(self, layer, output, state, batch):
        D = layer.num_directions
        return np.concatenate(list(_h_n(state)[-D:]), axis=1)

    def backward_args(self, layer, output, state, batch, d_features):
        """(grad_output, grad_h_n) for ``layer.backward`` from dL/d(features): the rows are
        the last layer's entries of h_n and nothing else."""
        h_n = _h_n(state)
        D, L = layer.num_directions, layer.num_layers
        d_h_n = np.zeros_like(h_n)
        d_h_n[(L - 1) * D:] = d_features.reshape(len(d_features), D, -1).transpose(1, 0, 2)
        return np.zeros_like(output), d_h_n

    def rows(self, targets, weights, batch):
        """The batch's targets and sample weights, one row a sequence: as they are."""
        return targets, weights


class EveryStep:
    """Every valid step's output, (N_valid, D * P): both directions at that step."""

    def features(self, layer, output, state, batch):
        mask = valid_steps(batch)
        return output.reshape(-1, output.shape[2]) if mask is None else output[mask]

    def backward_args(self, layer, output, state, batch, d_features):
        """dL/d(output) holds the rows' gradients at the valid steps (zeros elsewhere); no
        gradient flows into h_n but through them."""
        mask = valid_steps(batch)
        d_output = np.zeros_like(output)
        if mask is None:  # (output may be a transposed view: reshape the rows, not it)
            d_output[...] = d_features.reshape(output.shape)
        else:
            d_output[mask] = d_features
        return d_output, None

    def rows(self, targets, weights, batch):
        """Per-step targets (B, T_max[, k], padded) and per-sequence weights (B,) as rows:
        each valid step's target, and its sequence's weight."""
        T = batch.X.shape[1]
        targets = targets[:, :T]
        mask = valid_steps(batch)
        if mask is None:
            return targets.reshape((-1,) + targets.shape[2:]), np.repeat(weights, T)
        return targets[mask], np.repeat(weights, batch.lengths)
