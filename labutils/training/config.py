"""What determines a training run (:class:`TrainConfig`) and what it measured (:class:`TrainResult`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

__all__ = ["TrainConfig", "TrainResult", "BatchHook", "TRAINING_MODES", "ADVERSARIAL_MODES", "DUAL_BN_MODES",
           "DEFAULT_OVERFIT_CHECK"]

#: ``batch_hook(model, x, y) -> (x, y)``: replaces a training batch before the loss (e.g. adversarial training).
BatchHook = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

#: Training modes of :func:`~labutils.training.fit` (``TrainConfig.mode``), with the settings each one reads
#: besides the common ones; only those enter the run's identity (:meth:`TrainConfig.to_dict`), and giving
#: another mode's setting a value other than its default is an error (it would be silently ignored).
#: Standard training reads ``overfit_check`` only when it is set (to hold out the images an adversarial
#: run holds out, so that the two train on the same set).
_MODE_SETTINGS: dict[str, tuple[str, ...]] = {
    "standard": ("overfit_check",),
    "fgsm": ("eps", "adv_fraction", "attack_norm", "overfit_check"),
    "fast_fgsm": ("eps", "alpha", "random_start", "overfit_check"),
    "free": ("eps", "alpha", "replays", "overfit_check"),
    "pgd": ("eps", "alpha", "attack_steps", "attack_norm", "overfit_check"),
    "gaussian": ("noise_sigma",),
    "mixup": ("mixup_alpha",),
    "advprop": ("eps", "alpha", "attack_steps"),
    "entprop": ("eps", "alpha", "attack_steps", "entprop_k", "mixup_alpha"),
}
TRAINING_MODES = tuple(_MODE_SETTINGS)
ADVERSARIAL_MODES = ("fgsm", "fast_fgsm", "free", "pgd")
#: Modes that train a second, auxiliary set of BatchNorm statistics on adversarial examples (AdvProp, EntProp);
#: :func:`~labutils.training.fit` converts the model with dual BatchNorm and hands back the main set only.
DUAL_BN_MODES = ("advprop", "entprop")
#: Images an adversarial run holds out for the overfitting check when ``overfit_check`` is None.
DEFAULT_OVERFIT_CHECK = 512


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the checkpoint cache hashes it).

    Attributes:
        epochs: passes over the training set.
        batch_size: images per optimiser step.
        optimizer: ``"sgd"`` (Nesterov momentum) or ``"adam"``.
        lr: peak learning rate (per mean loss).
        momentum: SGD momentum.
        weight_decay: L2 penalty (SGD: coupled; Adam: decoupled, AdamW).
        bias_lr_scale: learning-rate multiplier for biases and other 1-D parameters.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        schedule: ``"triangular"`` (linear warm-up for ``warmup`` of the steps,
            then linear decay to ``final_lr_fraction``) or ``"constant"``.
        warmup: fraction of steps spent warming up.
        final_lr_fraction: learning rate at the end, as a fraction of ``lr``.
        augment: random crop (``pad`` pixels) and horizontal flip.
        pad: padding of the random crop, in pixels.
        objective: ``"classify"`` (cross-entropy on labels) or ``"reconstruct"`` (MSE to the input).
        train_size: use only the first ``train_size`` images of a fixed shuffle (None: all).
        early_size: side in pixels of the (bilinearly downscaled, antialiased) training images of the
            first ``early_epochs`` epochs: progressive resizing, cheaper early epochs
            (FLOPs scale with the pixel count: 24 px costs 0.56 of 32 px); None: full size throughout.
        early_epochs: epochs at ``early_size``.
        precision: ``"auto"`` (bf16 autocast where the hardware supports it natively), ``"bf16"`` or ``"fp32"``.
        mode: what each optimiser step trains on (see :mod:`labutils.training.adversarial` for the
            adversarial modes): ``"standard"`` (the batch), ``"fgsm"`` (a fraction ``adv_fraction``
            of each batch replaced by FGSM examples of budget ``eps``, made on the fly: the reference
            lab's FGSM-augmented training), ``"fast_fgsm"`` (Wong et al. 2020: uniform random start
            in the eps-ball, one signed step of ``alpha``, default 1.25 eps), ``"free"`` (Shafahi et
            al. 2019: each batch replayed ``replays`` times, one backward pass giving both the weight
            and the perturbation update; ``epochs / replays`` passes over the data (``epochs`` must be
            a multiple of ``replays``), so the cost is standard training's) or ``"pgd"`` (Madry et al. 2018: ``attack_steps`` PGD steps of
            ``alpha``, default eps / 4, from a random start) or ``"gaussian"`` (Gaussian noise
            augmentation of standard deviation ``noise_sigma``, Cohen et al. 2019: the base classifier
            of randomized smoothing), ``"mixup"`` (MixUp, Zhang et al. 2018: each batch mixed with a
            shuffled copy of itself, weight ~ Beta(``mixup_alpha``, ``mixup_alpha``)), ``"advprop"`` (Xie et
            al. 2020: clean images through the main BatchNorms plus PGD examples, ``attack_steps`` steps of
            ``alpha`` from a random start, through auxiliary ones) or ``"entprop"`` (Enomoto 2024: MixUp, then
            the ``entprop_k`` fraction of the batch with the highest predictive entropy trained with
            ``attack_steps`` free adversarial steps through the auxiliary BatchNorms; see
            :mod:`labutils.training.entprop`).
        eps: budget of the adversarial modes on the [0, 1] pixel scale: Linf (8/255 ~ 0.031, at most 1), or
            with ``attack_norm="l2"`` the Euclidean radius (e.g. 2.0 for a 28x28 image).
        attack_norm: ``"linf"`` (signed steps, clipped to the eps-box) or ``"l2"`` (steps along
            ``g / ||g||_2``, projected onto the L2 ball): read by modes ``"fgsm"`` (FGM-augmented
            batches) and ``"pgd"``; the other adversarial modes are Linf only.
        alpha: step size of the attack (None: the mode's published default, see :meth:`step_size`).
        random_start: fast FGSM's uniform start in the eps-ball (False: plain FGSM from the image,
            the setting known for catastrophic overfitting).
        attack_steps: PGD steps per batch in mode ``"pgd"``.
        replays: free training's m (default 2, a divisor of the default 10 epochs; Shafahi et al. used 8).
        adv_fraction: fraction of each batch replaced by FGSM examples in mode ``"fgsm"`` (1: all).
        overfit_check: images held out of the training set, attacked after every epoch with FGSM and
            PGD-10 to detect catastrophic overfitting (0: no check).  None (the default): 512 in the
            adversarial modes, none in standard training.  Set it to the same number in a standard
            run and the adversarial runs it is compared with, and all of them hold out the same images
            (a sample seeded by ``seed``) and train on the same set.
        mixup_alpha: MixUp's Beta(a, a) parameter (modes mixup, entprop; 1: the weight is uniform in [0, 1]).
        entprop_k: EntProp's k, the fraction of each batch (in (0, 1]) trained adversarially through the
            auxiliary BatchNorms.
        noise_sigma: standard deviation of mode ``"gaussian"``'s noise on the ``[0, 1]`` pixel scale (the
            smoothing sigma the model will be certified with, e.g. 0.25).
        seed: seeds the initial weights (:func:`~labutils.training.get_or_train` seeds the global
            generators with it before building the model), the shuffling and augmentation, the
            whitening sample and, through the global generators, dropout during :func:`fit`.
    """

    epochs: int = 10
    batch_size: int = 512
    optimizer: str = "sgd"
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    bias_lr_scale: float = 1.0
    label_smoothing: float = 0.0
    schedule: str = "triangular"
    warmup: float = 0.2
    final_lr_fraction: float = 0.0
    augment: bool = True
    pad: int = 4
    objective: str = "classify"
    train_size: int | None = None
    early_size: int | None = None
    early_epochs: int = 0
    precision: str = "auto"
    mode: str = "standard"
    eps: float = 8 / 255
    alpha: float | None = None
    random_start: bool = True
    attack_steps: int = 7
    attack_norm: str = "linf"
    replays: int = 2
    adv_fraction: float = 0.5
    overfit_check: int | None = None
    noise_sigma: float = 0.25
    mixup_alpha: float = 1.0
    entprop_k: float = 0.2
    seed: int = 0

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.optimizer in ("sgd", "adam"), "optimizer must be 'sgd' or 'adam'"),
            (self.lr > 0, "lr must be > 0"),
            (self.bias_lr_scale > 0, "bias_lr_scale must be > 0 (a learning-rate multiplier; it also divides "
                                     "the biases' weight decay)"),
            (self.momentum >= 0 and self.weight_decay >= 0, "momentum and weight_decay must be >= 0"),
            (0 <= self.final_lr_fraction <= 1, "final_lr_fraction must be in [0, 1]"),
            (self.pad >= 0, "pad must be >= 0"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed must be an integer >= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.schedule in ("triangular", "constant"), "schedule must be 'triangular' or 'constant'"),
            (0 <= self.warmup < 1, "warmup must be in [0, 1)"),
            (self.objective in ("classify", "reconstruct"), "objective must be 'classify' or 'reconstruct'"),
            (self.precision in ("auto", "bf16", "fp32"), "precision must be 'auto', 'bf16' or 'fp32'"),
            (self.train_size is None or self.train_size >= 1, "train_size must be None or >= 1"),
            (self.early_size is None or self.early_size >= 8, "early_size must be None or >= 8 pixels"),
            (self.mode != "free" or self.replays < 1 or self.epochs % self.replays == 0,
             f"mode 'free' makes epochs / replays passes over the data, each batch replayed replays times: "
             f"epochs ({self.epochs}) must be a multiple of replays ({self.replays}), so that free training "
             f"costs exactly what {self.epochs} standard epochs cost"),
            (self.mode in TRAINING_MODES, f"unknown mode {self.mode!r}: use one of {', '.join(TRAINING_MODES)}"),
            (self.mode == "standard" or self.objective == "classify",
             f"mode {self.mode!r} trains a classifier: it needs objective='classify'"),
            (self.attack_norm in ("linf", "l2"), f"attack_norm must be 'linf' or 'l2', got {self.attack_norm!r}"),
            (0 <= self.eps <= 1 if self.attack_norm == "linf" else 0 <= self.eps < float("inf"),
             f"eps must be in [0, 1] for attack_norm 'linf' (the [0, 1] pixel scale; 8/255 ~ 0.031) and a finite "
             f"radius >= 0 for 'l2', got {self.eps}"),
            (self.alpha is None or 0 < self.alpha <= (1 if self.attack_norm == "linf" else float("inf")),
             f"alpha must be None or in (0, 1] (Linf) / a positive radius (L2), got {self.alpha}"),
            (self.attack_steps >= 1, f"attack_steps must be >= 1 (EntProp's and AdvProp's n, PGD's k), got "
                                     f"{self.attack_steps}"),
            (self.replays >= 1, "replays must be >= 1"),
            (0 < self.adv_fraction <= 1, "adv_fraction must be in (0, 1]"),
            (isinstance(self.entprop_k, (int, float)) and 0 < self.entprop_k <= 1,
             f"entprop_k must be in (0, 1] (the fraction of each batch trained adversarially), got {self.entprop_k!r}"),
            (isinstance(self.mixup_alpha, (int, float)) and 0 < self.mixup_alpha < float("inf"),
             f"mixup_alpha must be a positive number (Beta(a, a); 1 is uniform), got {self.mixup_alpha!r}"),
            (isinstance(self.noise_sigma, (int, float)) and 0 < self.noise_sigma < float("inf"),
             f"noise_sigma must be a positive number (pixel scale [0, 1], e.g. 0.25), got {self.noise_sigma!r}"),
            (self.overfit_check is None or self.overfit_check >= 0,
             "overfit_check must be None or >= 0 (0: no catastrophic-overfitting check)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"TrainConfig: {msg}.")
        # after the epochs check: data_epochs() needs epochs % replays == 0 in mode free
        if self.early_size is not None and not 0 <= self.early_epochs < self.data_epochs():
            raise ValueError(f"TrainConfig: early_epochs must be in [0, {self.data_epochs()}) (the passes over the data"
                             f"{', epochs / replays in mode free' if self.mode == 'free' else ''}; the last one trains "
                             f"at full size), got {self.early_epochs}.")
        _reject_unread_settings(self)

    def to_dict(self) -> dict:
        """The settings that determine the run: the common ones and those the mode reads.

        A standard run without ``overfit_check`` has no adversarial setting at all, so it hashes as before
        modes existed; ``overfit_check`` enters resolved (None -> the number of images actually held out).
        """
        settings = dataclasses.asdict(self)
        unused = {name for names in _MODE_SETTINGS.values() for name in names} - set(_MODE_SETTINGS[self.mode])
        if self.mode == "standard":
            unused.add("mode")
            if self.overfit_check is None:
                unused.add("overfit_check")
        if self.attack_norm == "linf":
            unused.add("attack_norm")  # the default: configs from before L2 training keep their identity
        if "overfit_check" not in unused:
            settings["overfit_check"] = self.check_size()
        return {k: v for k, v in settings.items() if k not in unused}

    def check_size(self) -> int:
        """Training images held out for the per-epoch robustness check: ``overfit_check``, or when it is
        None :data:`DEFAULT_OVERFIT_CHECK` in the adversarial modes and 0 in standard training."""
        if self.overfit_check is not None:
            return self.overfit_check if self.objective == "classify" else 0
        return DEFAULT_OVERFIT_CHECK if self.adversarial else 0

    @property
    def adversarial(self) -> bool:
        """Whether the mode trains on adversarial examples."""
        return self.mode in ADVERSARIAL_MODES

    def step_size(self) -> float:
        """The attack's step size: ``alpha``, else the mode's default (fgsm and free: eps; fast_fgsm:
        1.25 eps (Wong et al.); pgd: eps / 4, Madry et al.'s 2/255 at eps 8/255; advprop and entprop:
        1/255, EntProp's step of 1 on the 0-255 scale)."""
        if self.alpha is not None:
            return self.alpha
        return {"fast_fgsm": 1.25 * self.eps, "pgd": self.eps / 4, "advprop": 1 / 255,
                "entprop": 1 / 255}.get(self.mode, self.eps)

    def data_epochs(self) -> int:
        """Passes over the training data: ``epochs``, or ``epochs // replays`` in mode free (exact: the
        config requires ``epochs`` to be a multiple of ``replays``)."""
        return self.epochs // self.replays if self.mode == "free" else self.epochs

    def steps_per_batch(self) -> int:
        """Optimiser steps per batch: ``replays`` in mode free, else 1."""
        return self.replays if self.mode == "free" else 1


@dataclass
class TrainResult:
    """What :func:`fit` measured: per-epoch history, wall time, counted passes and the overfitting check."""

    history: list[dict]
    train_seconds: float
    precision: str
    resumed_from_epoch: int = 0
    #: ``{"forward": images, "backward": images}`` summed over the run (one image through the network once = 1).
    passes: dict = dataclasses.field(default_factory=dict)
    #: what :func:`labutils.training.adversarial.detect_catastrophic_overfitting` found (None: nothing, or no check).
    catastrophic_overfitting: dict | None = None
    #: passes over the training data (``len(history)``; ``epochs / replays`` in mode free).
    data_epochs: int = 0
    #: standard-training epochs this run cost: ``data_epochs`` x optimiser steps per batch (``replays`` in free).
    equivalent_epochs: int = 0


def _reject_unread_settings(cfg: TrainConfig) -> None:
    """A mode-specific setting given a non-default value in a mode that does not read it is an error."""
    read = set(_MODE_SETTINGS[cfg.mode])
    for field in dataclasses.fields(cfg):
        name = field.name
        if name in read or not any(name in names for names in _MODE_SETTINGS.values()):
            continue
        if getattr(cfg, name) != field.default:
            readers = [m for m, names in _MODE_SETTINGS.items() if name in names]
            raise ValueError(f"TrainConfig: mode {cfg.mode!r} does not read {name}={getattr(cfg, name)!r}; it would be "
                             f"ignored.  {name} is read by mode{'s' if len(readers) > 1 else ''} "
                             f"{', '.join(readers)}: leave it at its default ({field.default!r}) in mode {cfg.mode!r}.")
