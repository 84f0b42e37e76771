"""Training: epochs of mini-batch steps (BPTT in the engine), stopping rules, divergence, and a
checkpoint that undoes a fit that stops early."""

import contextlib
import time
import warnings

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import _check_sample_weight

from .._checks import check_dtype
from .._lstm import all_finite
from ..optim import clip_global_norm, configure, make_optimizer
from ._dask import is_dask
from ._data_parallel import Shards, shard
from ._sequences import check_sequences, naming
from ._state import SHAPE_PARAMS, Checkpoint, param_value

__all__ = ["TrainingMixin"]


def loss_shares(weights, n):
    """Each of n rows' share of a batch's mean loss: weights / their sum (equal shares if
    None; zeros if the batch's weights are all zero)."""
    if weights is None:
        return np.full(n, 1 / n)
    total = weights.sum()
    return weights / total if total > 0 else np.zeros(n)


def _computed(a):
    """A Dask collection's values (targets and weights: the client holds them), else ``a``."""
    return a.compute() if is_dask(a) else a


class TrainingMixin:
    """fit and partial_fit of the recurrent estimators (see BaseLSTMEstimator)."""

    def _fit(self, X, y, incremental, classes=None, sample_weight=None):
        """fit and partial_fit, undone back to the last completed epoch if anything raises."""
        self._validate_params()
        checkpoint = Checkpoint(self)
        try:
            self._fit_checked(X, y, incremental, classes, sample_weight, checkpoint)
        except BaseException:
            checkpoint.restore(self)
            raise
        return self

    def _fit_checked(self, X, y, incremental, classes, sample_weight, checkpoint):
        dtype = check_dtype(self.dtype)
        first = not hasattr(self, "lstm_") or not (incremental or self.warm_start)
        if not first:
            self._check_same_shape("partial_fit" if incremental else "a warm_start fit")
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None.")
        if not is_dask(X):
            data = check_sequences(self, X, reset=first, dtype=dtype)
            return self._fit_data(data, y, sample_weight, first, incremental, classes,
                                  checkpoint)
        with contextlib.closing(shard(self, X, reset=first, dtype=dtype)) as data:
            self._fit_data(data, _computed(y), _computed(sample_weight), first, incremental,
                           classes, checkpoint)  # (across the workers: see _data_parallel)

    def _fit_data(self, data, y, sample_weight, first, incremental, classes, checkpoint):
        """The fit on checked ``data`` (a SequenceData, or Shards on Dask workers)."""
        with naming("y"):
            targets = self._targets(data, y, first, incremental, classes)
        weights = self._sample_weights(sample_weight, data, targets, incremental)
        if first:
            self._initialize(data, targets, weights)
        targets = self._encoded(targets)
        self.lstm_.dropout = self.dropout
        self._optimizer = self._optimizer_for(keep_state=incremental)
        data = self._standardized(data)
        if isinstance(data, Shards):
            data.start(self, targets, weights)
        with self._thread_limits():
            if incremental:
                self._epoch(data, targets, weights)
            else:
                self._fit_epochs(data, targets, weights, checkpoint)

    def _targets(self, data, y, first, incremental, classes):
        """``y`` checked for ``data`` (see _check_targets)."""
        targets = self._check_targets(y, first, incremental, classes)
        if len(targets) != len(data):
            raise ValueError(f"X and y have inconsistent numbers of samples: {len(data)} and "
                             f"{len(targets)}")
        return targets

    def _sample_weights(self, sample_weight, data, targets, incremental):
        """Each sequence's weight in the loss (float64, shape (n,); ones if ``sample_weight``
        is None). Prepares the class weights of classifiers (see _class_factor)."""
        with naming("sample_weight"):
            weights = _check_sample_weight(sample_weight, np.empty((len(data), 0)),
                                           dtype=np.float64, ensure_non_negative=True)
            if not np.all(np.isfinite(weights)):
                raise ValueError("sample_weight contains NaN or infinity")
        row_targets, row_weights = self._head.rows(targets, weights, data)
        self._prepare_class_weights(row_targets, incremental)
        if not (row_weights * self._class_factor(row_targets)).sum() > 0:
            raise ValueError("sample_weight (times class_weight) is zero for every sample: "
                             "there is nothing to learn from")
        return weights

    def _prepare_class_weights(self, targets, incremental):
        """Classifiers compute their class weights for this call here."""

    def _class_factor(self, targets):
        """The loss weight of each target row's class (1 here: classifiers override it)."""
        return 1.0

    def _check_same_shape(self, how):
        """Refuse a continued fit whose parameters ask for another model shape."""
        for name, fitted in self._architecture.items():
            if name in SHAPE_PARAMS and param_value(name, getattr(self, name)) != fitted:
                raise ValueError(
                    f"{how} cannot change {name} from {fitted!r} to {getattr(self, name)!r}: "
                    f"the fitted model keeps its shape. Fit with warm_start=False (or a new "
                    f"estimator) to train a model of the new shape.")

    def _optimizer_settings(self):
        return dict(learning_rate=self.learning_rate_init, momentum=self.momentum,
                    beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)

    def _optimizer_for(self, keep_state):
        """The optimiser for this call: the current one with the current settings (partial_fit
        with the same solver), else a new one."""
        optimizer = getattr(self, "_optimizer", None)
        if keep_state and optimizer is not None and optimizer.solver == self.solver:
            configure(optimizer, self._optimizer_settings())
            return optimizer
        return make_optimizer(self.solver, self._parameters(), self._optimizer_settings())

    def _gradients(self):
        return list(self.lstm_.grads.values())

    def _fit_epochs(self, data, targets, weights, checkpoint):
        train, val = (data, targets, weights), None
        if self.early_stopping:
            train_idx, val_idx = self._validation_split(targets)
            train = (data.take(train_idx), targets[train_idx], weights[train_idx])
            val = (data.take(val_idx), targets[val_idx], weights[val_idx])
            if not (train[2].sum() > 0 and val[2].sum() > 0):
                part = "training" if not train[2].sum() > 0 else "validation"
                raise ValueError(f"sample_weight is zero for every sample of the {part} part "
                                 "that early_stopping holds out: weigh more samples, or set "
                                 "early_stopping=False")
            self._best_parameters = None
        for _ in range(self.max_iter):
            start = time.perf_counter()
            self._epoch(*train)
            score = self._score_encoded(*val) if val is not None else None
            if self.verbose:
                shown = "-" if score is None else f"{score:.6f}"
                print(f"Epoch {self.n_iter_}: loss {self.loss_:.6f}, validation score {shown}, "
                      f"{time.perf_counter() - start:.2f}s")
            stop = self._no_progress(score)
            checkpoint.save(self)
            if stop:
                if self.verbose:
                    print(self._why_stopped())
                break
        else:
            if self.early_stopping or self.tol is not None:
                warnings.warn(f"Stochastic optimiser: maximum iterations ({self.max_iter}) "
                              "reached and the optimisation hasn't converged yet.",
                              ConvergenceWarning)
        if self.early_stopping and self._best_parameters is not None:
            for p, best in zip(self._parameters(), self._best_parameters):
                p[...] = best
            self.lstm_.mark_updated()

    def _validation_split(self, targets):
        """Training and validation indices for early stopping (stratified for classifiers of
        one label a sequence), or a ValueError if the data are too few to split so."""
        n = len(targets)
        n_val = int(np.ceil(self.validation_fraction * n))  # as train_test_split counts
        classifier = isinstance(self, ClassifierMixin) and targets.ndim == 1  # (not per step)
        counts = np.bincount(targets) if classifier else None
        need = max(2, len(self.classes_)) if classifier else 2
        if n_val < need or n - n_val < need or (classifier and counts.min() < 2):
            what = (f"at least {need} samples in each part and 2 of every class"
                    if classifier else "at least 2 samples in each part (R2 needs 2)")
            raise ValueError(
                f"early_stopping holds out validation_fraction={self.validation_fraction} of "
                f"the {n} samples ({n_val}) to score each epoch, and needs {what}: raise "
                "validation_fraction, give more samples, or set early_stopping=False")
        return train_test_split(np.arange(n), test_size=self.validation_fraction,
                                stratify=targets if classifier else None,
                                random_state=self._rng.randint(np.iinfo(np.int32).max))

    def _no_progress(self, score):
        """Update the progress counters after an epoch; True when training should stop: after
        more than n_iter_no_change epochs without the validation score rising above its best
        by more than tol (0 if None) with early stopping, else without the training loss
        falling below its best by more than tol (never if tol is None)."""
        tol = self.tol or 0.0
        if self.early_stopping:
            self.validation_scores_.append(score)
            if not score > self.best_validation_score_ + tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_parameters = [p.copy() for p in self._parameters()]
        else:
            if not self.loss_ < self.best_loss_ - tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, self.loss_)
            if self.tol is None:
                return False
        return self._no_improvement_count > self.n_iter_no_change

    def _why_stopped(self):
        """The verbose line that says why a fit stopped before max_iter."""
        tol = self.tol or 0.0
        if self.early_stopping:
            return (f"Validation score did not improve by more than tol={tol} for "
                    f"{self._no_improvement_count} consecutive epochs (best "
                    f"{self.best_validation_score_:.6f}). Stopping after epoch {self.n_iter_}; "
                    "the parameters of the best epoch are kept.")
        return (f"Training loss did not improve by more than tol={tol} for "
                f"{self._no_improvement_count} consecutive epochs (best {self.best_loss_:.6f})."
                f" Stopping after epoch {self.n_iter_}.")

    def _epoch(self, data, targets, weights):
        """One pass over the data in mini-batches; the epoch's loss is the weighted mean of the
        rows' losses (each batch's mean weighted by its rows' total weight)."""
        n = len(data)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        batch = min(self.batch_size, n)
        total = weight = 0.0
        for start in range(0, n, batch):
            index = order[start:start + batch]
            loss, batch_weight = self._step(data.take(index), targets[index], weights[index])
            total, weight = total + loss * batch_weight, weight + batch_weight
        if not all(all_finite(p) for p in self._parameters()):
            self._diverged("the parameters")
        loss = total / weight
        if self.alpha:
            matrices = [p for name, p in self.lstm_.named_parameters()
                        if name.startswith("weight")] + self.coefs_
            loss += 0.5 * self.alpha * sum(float(np.vdot(w, w)) for w in matrices) / n
        if not np.isfinite(loss):
            self._diverged("the loss")
        self.loss_ = loss
        self.loss_curve_.append(self.loss_)
        self.n_iter_ += 1
        self.t_ += n

    def _step(self, batch, targets, weights):
        """Forward, backward and one optimiser update on a mini-batch (here, or across Dask
        workers: see _data_parallel); returns its weighted mean loss and the total weight of its
        rows."""
        if isinstance(batch, Shards):
            loss, weight, grads = batch.gradients()
        else:
            loss, weight, grads = self._batch_gradients(batch, targets, weights)
        if not np.isfinite(loss):
            self._diverged("the loss")
        self._update(grads, len(batch), weight)
        return loss, weight

    def _batch_gradients(self, batch, targets, weights):
        """(loss, weight, grads) of a mini-batch: its weighted mean loss, the total weight of
        its rows and the gradients of that loss (the layer's, then the output layer's; None if
        the loss is not finite)."""
        lstm, head = self.lstm_, self._head
        output, state = lstm.forward(batch.X, lengths=batch.lengths, training=True,
                                     precision=self._fit_precision())
        features = head.features(lstm, output, state, batch)
        logits = features @ self.coefs_[0] + self.intercepts_[0]
        row_targets, row_weights = head.rows(targets, weights, batch)
        row_weights = row_weights * self._class_factor(row_targets)
        loss, d_logits = self._loss_and_gradient(logits, row_targets, row_weights)
        if not np.isfinite(loss):  # (no gradients: the caller says training diverged)
            return loss, float(row_weights.sum()), None
        d_coef, d_intercept = features.T @ d_logits, d_logits.sum(axis=0)
        lstm.zero_grad()
        lstm.backward(*head.backward_args(lstm, output, state, batch,
                                          d_logits @ self.coefs_[0].T))
        return loss, float(row_weights.sum()), self._gradients() + [d_coef, d_intercept]

    def _update(self, grads, n, weight):
        """One optimiser update from the gradients of a mini-batch of ``n`` sequences whose
        rows weigh ``weight`` in all: the weight decay (alpha), clipping, the step. ``grads``
        are changed in place."""
        lstm = self.lstm_
        if self.alpha:
            for (name, p), g in zip(lstm.named_parameters(), grads):
                if name.startswith("weight"):
                    g += (self.alpha / n) * p
            grads[-2] += (self.alpha / n) * self.coefs_[0]
        if not np.isfinite(clip_global_norm(grads, self.clip_grad_norm)):
            self._diverged("the gradients")
        if weight > 0:  # (a batch of zero weight teaches nothing: no step)
            self._optimizer.step(grads)
            lstm.mark_updated()

    def _diverged(self, what):
        raise ValueError(
            f"{type(self).__name__}: training diverged at epoch {self.n_iter_ + 1} ({what} "
            "became NaN or infinite). The estimator is left as after its last completed epoch "
            "(or as before this call). Lower learning_rate_init, keep clip_grad_norm on, or "
            "scale the data.")
