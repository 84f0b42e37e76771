"""Packed-sequence bookkeeping: the layout the engine runs on.

Sequences are sorted by length (longest first, stable) and laid out time-major with the padding
dropped, as cuDNN and PyTorch's ``PackedSequence`` do: step ``t`` is ``batch_sizes[t]``
consecutive rows starting at ``offsets[t]``. With no ``lengths`` the packed array is the padded
one, reshaped, no copy.
"""

import functools

import numpy as np

__all__ = ["Packing", "packing_for"]


def packing_for(lengths, T, B):
    """The Packing of a batch: shared (cached) when every sequence has all T steps."""
    if lengths is None or np.all(lengths == T):
        return _full_packing(T, B)
    return Packing(lengths, T, B)


@functools.lru_cache(maxsize=32)
def _full_packing(T, B):
    return Packing(None, T, B)


class Packing:
    """Sort order, per-step batch sizes and row offsets of one batch of sequences.

    Parameters
    ----------
    lengths : ndarray of shape (B,) or None
        Valid steps of each sequence, all in ``[1, T]``; None means every sequence has ``T`` steps.
    T, B : int
        Padded sequence length and batch size.
    """

    def __init__(self, lengths, T, B):
        self.T, self.B = T, B
        if lengths is None:
            self.order = None
            self.batch_sizes = np.full(T, B, dtype=np.intp)
        else:
            self.order = np.argsort(-lengths, kind="stable")
            sorted_lengths = lengths[self.order]
            steps = np.arange(sorted_lengths[0])
            self.batch_sizes = (sorted_lengths[None, :] > steps[:, None]).sum(axis=1).astype(
                np.intp)
            # packed row n is step steps[n] of sequence seqs[n] (original order); np.nonzero walks
            # the (T, B) validity mask of the sorted batch time-major, as the packed rows run
            valid = np.arange(T)[:, None] < sorted_lengths[None, :]
            self.steps, sorted_seqs = np.nonzero(valid)
            self.seqs = self.order[sorted_seqs]
            self.pad_steps, sorted_pads = np.nonzero(~valid)
            self.pad_seqs = self.order[sorted_pads]
        self.offsets = np.zeros(len(self.batch_sizes), dtype=np.intp)
        np.cumsum(self.batch_sizes[:-1], out=self.offsets[1:])
        self.n_rows = int(self.batch_sizes.sum())
        for a in (self.batch_sizes, self.offsets):
            a.flags.writeable = False
        self._runs = {}

    def runs(self, rows):
        """The packed steps in as few runs of whole steps as hold at most about ``rows`` rows
        each, of about equal size (at least one step each), in time order: ``(batch_sizes,
        offsets, r0, r1)`` per run, its steps' sizes and offsets (counted from its first row r0)
        and its rows ``r0:r1``. One run when all the rows fit in it."""
        if self.n_rows <= rows:
            return [(self.batch_sizes, self.offsets, 0, self.n_rows)]
        runs = self._runs.get(rows)
        if runs is None:
            ends = self.offsets + self.batch_sizes
            bounds, steps = [0], len(self.batch_sizes)
            share = -(-self.n_rows // -(-self.n_rows // rows))  # N over the runs, rounded up
            while bounds[-1] < steps:
                t0 = bounds[-1]
                # through the first step that reaches the share, unless that passes `rows`
                t1 = min(steps, int(np.searchsorted(ends, self.offsets[t0] + share)) + 1)
                if t1 > t0 + 1 and ends[t1 - 1] - self.offsets[t0] > rows:
                    t1 -= 1
                bounds.append(t1)
            runs = []
            for t0, t1 in zip(bounds[:-1], bounds[1:]):
                r0 = int(self.offsets[t0])
                offsets = self.offsets[t0:t1] - r0
                offsets.flags.writeable = False
                runs.append((self.batch_sizes[t0:t1], offsets, r0, int(ends[t1 - 1])))
            self._runs[rows] = runs
        return runs

    def pack(self, padded):
        """(T, B, F) padded time-major array to (N, F) packed rows (C-contiguous)."""
        if self.order is None:
            return np.ascontiguousarray(padded.reshape(self.T * self.B, -1))
        return padded[self.steps, self.seqs]

    def unpack(self, packed):
        """(N, F) packed rows to a (T, B, F) padded array, zero at padded steps, original order."""
        if self.order is None:
            return packed.reshape(self.T, self.B, -1)
        padded = np.empty((self.T, self.B, packed.shape[1]), dtype=packed.dtype)
        padded[self.steps, self.seqs] = packed
        padded[self.pad_steps, self.pad_seqs] = 0
        return padded

    def following_rows(self, reverse):
        """For each packed row: the row of the same sequence at the step its time loop runs next
        (t + 1, or t - 1 for the reverse direction), -1 where the sequence ends there; and the
        row's sequence, in sorted order. (How a state stored per step shifts to the next.)"""
        steps = np.repeat(np.arange(len(self.batch_sizes)), self.batch_sizes)
        seqs = np.arange(self.n_rows) - self.offsets[steps]
        following = steps + (-1 if reverse else 1)
        inside = (following >= 0) & (following < len(self.batch_sizes))
        following = np.clip(following, 0, len(self.batch_sizes) - 1)
        valid = inside & (seqs < self.batch_sizes[following])
        return np.where(valid, self.offsets[following] + seqs, -1), seqs

    def sort_state(self, state):
        """(K, B, F) per-sequence state, original order, to sorted order (contiguous copy)."""
        if self.order is None:
            return np.array(state, order="C", copy=True)
        return np.ascontiguousarray(state[:, self.order])

    def unsort_state(self, state):
        """(K, B, F) per-sequence state, sorted order, back to the original order."""
        if self.order is None:
            return state
        out = np.empty_like(state)
        out[:, self.order] = state
        return out
