"""The estimators' shared parameter and attribute documentation."""

PARAMS_DOC = """
    Parameters
    ----------
    hidden_size : int, default=64
        Size of the recurrent layer's state (the LSTM's cell state).
    num_layers : int, default=1
        Stacked recurrent layers.
    bidirectional : bool, default=False
        Also read the sequences backwards; the output layer sees both directions' last states.
    dropout : float, default=0.0
        Dropout between recurrent layers during training.
    proj_size : int, default=0
        If > 0, the LSTM's hidden state is projected to this size (``cell="lstm"`` only).
    solver : {"adam", "sgd"}, default="adam"
        Optimiser: Adam, or SGD with momentum.
    learning_rate_init : float, default=1e-3
        Step size.
    batch_size : int, default=32
        Sequences per mini-batch (clipped to the number of samples).
    max_iter : int, default=200
        Maximum number of epochs (passes over the data).
    alpha : float, default=0.0
        L2 penalty (weight decay) on every weight matrix, not on biases.
    clip_grad_norm : float or None, default=5.0
        Rescale the gradient when its global L2 norm exceeds this; None turns clipping off.
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    tol : float or None, default=None
        Improvement of the training loss (or, with early stopping, of the validation score)
        below which an epoch counts as no progress. None: the training loss never stops a fit
        (every epoch up to ``max_iter`` runs, as in Keras and skorch), and early stopping
        counts epochs without any improvement. See Notes.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified for the classifier), stop when its
        score stops improving and keep the best parameters.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    n_iter_no_change : int, default=10
        Epochs without progress (see ``tol``) before stopping: with early stopping, or on the
        training loss when ``tol`` is a number.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and numerical constant.
    momentum : float, default=0.9
        SGD momentum.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, validation split and dropout. The same ``random_state``
        and ``n_threads`` give bitwise identical fitted models.
    verbose : int, default=0
        If > 0, print one line per epoch (epoch, loss, validation score, seconds).
    warm_start : bool, default=False
        Continue from the previous fit's parameters instead of re-initialising.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the parameters and computations.
    n_threads : int or None, default=None
        Threads for BLAS and the engine during fit and predict (restored afterwards). None
        uses the caller's budget: the current OpenMP and BLAS limits (``OMP_NUM_THREADS``,
        ``threadpoolctl.threadpool_limits``, joblib's per-worker limit), at most the CPUs the
        process may run on; so ``GridSearchCV(n_jobs=k)`` does not oversubscribe the cores.
    standardize : bool, default=True
        Standardise every input feature with the mean and standard deviation seen by the first
        ``fit`` (over valid steps only), applied again at predict time.
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        The recurrent layer: :class:`lstm_fast.LSTM`, :class:`lstm_fast.GRU` or a tanh
        :class:`lstm_fast.RNN`.
    forget_bias : float, default=1.0
        Initial forget-gate bias of the LSTM (``cell="lstm"`` only).
    recurrent_init : {"orthogonal", "glorot"}, default="orthogonal"
        Initialisation of the recurrent weights.
    predict_precision : {None, "bfloat16", "int8"}, default=None
        Precision of the recurrent products at predict time (and in ``stream``): None, the
        model's dtype; "bfloat16" or "int8" (float32 models), see ``precision`` of
        :meth:`lstm_fast.LSTM.forward`. Training is not affected; it can be set after ``fit``
        (``set_params``).
    fit_precision : {None, "bfloat16"}, default=None
        Precision of the recurrent layer's products in training (forward and backward): None,
        the model's dtype; "bfloat16" (float32 models), mixed-precision training: the products
        of bf16-rounded operands summed in float32, the weights, the optimiser, gates, states
        and gradient sums in float32 (see ``precision`` of :meth:`lstm_fast.LSTM.forward`).
"""

CLASSIFIER_PARAMS_DOC = """    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss ({label: weight}; absent labels weigh 1), multiplied
        with ``sample_weight``. "balanced" weighs each class by n_samples / (n_classes *
        its count) in the data of ``fit`` (not supported by ``partial_fit``).
"""

REGRESSOR_PARAMS_DOC = """    normalize_y : bool, default=True
        Train on the targets standardised per output (with the mean and standard deviation
        seen by the first ``fit`` or ``partial_fit``), undone at predict time, so that the
        defaults learn whatever the targets' scale. ``loss_`` is then in standardised units.
"""

ATTRS_DOC = """
    Attributes
    ----------
    lstm_ : LSTM, GRU or RNN
        The fitted recurrent layer (of ``cell``).
    coefs_ : list of one ndarray of shape (D * H_out, n_outputs)
        Weights of the output layer.
    intercepts_ : list of one ndarray of shape (n_outputs,)
        Biases of the output layer.
    loss_ : float
        Training loss of the last epoch (with the L2 term).
    loss_curve_ : list of float
        Training loss of every epoch.
    best_loss_ : float or None
        Lowest training loss seen (None with early stopping).
    validation_scores_ : list of float or None
        Validation score of every epoch (early stopping only).
    best_validation_score_ : float or None
        Best validation score (early stopping only).
    n_iter_ : int
        Epochs run.
    t_ : int
        Training samples seen.
    n_features_in_ : int
        Features per step (3-D or list input), or steps of the univariate series (2-D input).
    scaler_mean_, scaler_scale_ : ndarray of shape (n_features,)
        The standardisation (zeros and ones when ``standardize=False``).
"""

NOTES_DOC = """
    Notes
    -----
    By default (``tol=None``) a fit runs every epoch up to ``max_iter``, as Keras and skorch
    do: recurrent networks often sit on a plateau of the training loss for tens of epochs
    before it falls, and scikit-learn's MLP rule (stop after ``n_iter_no_change=10`` epochs
    without the loss improving by ``tol=1e-4``) stops them there. On five UCR/UEA data sets
    (GunPoint, ItalyPowerDemand, ArrowHead, BasicMotions, JapaneseVowels; default parameters,
    3 seeds) it stopped at epochs 40-136 of 300, BasicMotions at test accuracy 0.60-0.68 where
    300 epochs reach 0.90-0.95, GunPoint at 0.79-0.95 against 0.96-0.98 (figures in
    BENCHMARKS.md; ``benchmarks/stopping_rules.py`` reproduces them). A longer patience or a
    relative, smoothed tolerance still stopped some of them early. Set ``tol`` to a number
    for that rule, or ``early_stopping=True`` to stop on a held-out score (the guard against
    over-fitting) and keep the best epoch's parameters. With ``verbose`` a fit that stops
    says why; a ConvergenceWarning says that ``max_iter`` ended a fit whose stopping rule
    had not fired.
"""
