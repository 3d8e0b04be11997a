"""MixUp, AdvProp and EntProp: training modes of :func:`labutils.training.fit` that aim at accuracy on clean
*and* corrupted images rather than at adversarial robustness.

AdvProp (Xie et al. 2020) and EntProp (Enomoto 2024) train adversarial examples through a second set of
BatchNorm statistics (:mod:`labutils.models.dual_bn`): the examples' statistics differ from clean images',
and mixing them into the main BatchNorms hurts clean accuracy.  ``fit`` converts the model before the
first step and hands back the main set only.  Passes are counted per image as in :mod:`.steps`:

==============  ============================================================================  =================
mode            each batch of N images                                                        passes per image
==============  ============================================================================  =================
``"mixup"``     mixed with a shuffled copy of itself (weight ~ Beta(a, a)), mixed loss        1
``"advprop"``   clean through the main BNs; PGD (n steps of ``alpha`` from a random start,    2 + n
                in the eps-ball) through the auxiliary BNs, and its examples trained there
``"entprop"``   MixUp; one main-BN pass gives the mixed loss L_m, each image's predictive     1 + k n
                entropy and (from the same backward pass) the input gradient; the k N images
                of highest entropy take n free adversarial steps through the auxiliary BNs,
                the first from the main pass's gradient, each pass also giving the weights'
                gradient of L_c; minimise L_m + L_c
==============  ============================================================================  =================

EntProp's L_c is the mean over its n auxiliary passes of the mixed cross-entropy of the selected images
(the free-training way of reusing every backward pass), so one optimiser step per batch sees
``L_m + L_c``.  Budgets are Linf on the ``[0, 1]`` scale; EntProp's published setting is ``eps =
(n + 1)/255`` and a step of ``1/255``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.dual_bn import auxiliary_bn
from ..runtime import channels_last
from .adversarial import _AttackingStep
from .steps import Step

__all__ = ["mixup_batch", "mixed_cross_entropy", "predictive_entropy", "select_highest_entropy", "entropy_histogram",
           "ENTROPY_BINS", "ENTROPY_RANGE", "MixUpStep", "AdvPropStep", "EntPropStep", "ENTPROP_STEPS"]


def mixup_batch(x: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """MixUp (Zhang et al. 2018): ``lam * x + (1 - lam) * x[perm]`` with ``lam ~ Beta(alpha, alpha)``.

    Draws from the global generators (their state is in the resumable checkpoint).  Returns
    ``(mixed images (N, C, H, W), labels y, labels y[perm], lam)``; the inputs are not modified."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], device=x.device)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam


def mixed_cross_entropy(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float,
                        reduction: str = "mean", label_smoothing: float = 0.0) -> torch.Tensor:
    """``lam * CE(logits, y_a) + (1 - lam) * CE(logits, y_b)``; ``reduction="none"`` gives it per image ``(N,)``.

    ``label_smoothing`` as in :func:`torch.nn.functional.cross_entropy` (the run's setting, so that a mixed
    loss differs from the plain one only by the mixing)."""
    ce = [F.cross_entropy(logits, t, reduction=reduction, label_smoothing=label_smoothing) for t in (y_a, y_b)]
    return lam * ce[0] + (1 - lam) * ce[1]


def predictive_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax of each row of ``logits`` ``(N, K)``, in nats ``(N,)``, in ``[0, log K]``."""
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1)


def select_highest_entropy(logits: torch.Tensor, k: float) -> torch.Tensor:
    """Indices of the ``max(1, round(k N))`` rows of ``logits`` ``(N, K)`` with the highest predictive entropy.

    ``k`` in ``(0, 1]``; ties are broken by ``torch.topk`` (lowest index first is not guaranteed)."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1] (the fraction of the batch selected), got {k!r}.")
    count = max(1, round(k * logits.shape[0]))
    return predictive_entropy(logits.detach()).topk(count).indices


def _mixed_correct(out: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
    pred = out.argmax(1)
    return (lam * (pred == y_a).float() + (1 - lam) * (pred == y_b).float()).sum().round().long()


class _LinfSteps(_AttackingStep):
    """The adversarial modes' perturbation tools (``input_grad``, ``random_delta``, ``project``: the Linf ball,
    as these modes do not read ``attack_norm``), and one optimiser step on gradients already computed."""

    def finish(self, loss: torch.Tensor | None) -> None:
        """Backward ``loss`` (None: the gradients are already in place), step the optimiser and the schedule."""
        if loss is not None:
            loss.backward()
        self.lr = self.opt.param_groups[0]["lr"]
        self.opt.step()
        self.schedule.step()


class MixUpStep(_LinfSteps):
    """MixUp only: one forward and one backward pass per image on the mixed batch."""

    def __call__(self, x, y):
        xm, y_a, y_b, lam = mixup_batch(x, y, self.cfg.mixup_alpha)
        out = self.logits(xm)
        loss = mixed_cross_entropy(out, y_a, y_b, lam, label_smoothing=self.cfg.label_smoothing)
        self.opt.zero_grad(set_to_none=True)
        self.passes.add(x.shape[0])
        self.finish(loss)
        return loss.detach() * x.shape[0], _mixed_correct(out.detach(), y_a, y_b, lam), x.shape[0]


class AdvPropStep(_LinfSteps):
    """AdvProp: PGD examples made and trained through the auxiliary BatchNorms, clean images through the main ones."""

    def __call__(self, x, y):
        alpha = self.cfg.step_size()
        delta = self.project(x, self.random_delta(x))
        with auxiliary_bn(self.model):
            for _ in range(self.cfg.attack_steps):
                g = self.input_grad(x + delta, y)  # counted: one pass through the auxiliary statistics
                delta = self.project(x, delta + alpha * g.sign())
        self.opt.zero_grad(set_to_none=True)
        out = self.logits(x)
        loss_main = F.cross_entropy(out, y, label_smoothing=self.cfg.label_smoothing)
        with auxiliary_bn(self.model):
            loss_aux = F.cross_entropy(self.logits(channels_last(x + delta)), y,
                                       label_smoothing=self.cfg.label_smoothing)
        self.passes.add(2 * x.shape[0])
        self.finish(loss_main + loss_aux)
        return loss_main.detach() * x.shape[0], (out.detach().argmax(1) == y).sum(), x.shape[0]


#: Bin edges (nats) of the per-epoch entropy histograms of EntProp's selected and unselected images: 30 bins
#: over [0, log 10], the range for ten classes (a larger entropy falls in the last bin).
ENTROPY_BINS = 30
ENTROPY_RANGE = (0.0, 2.302585092994046)


def entropy_histogram(entropy: torch.Tensor) -> torch.Tensor:
    """Counts of ``entropy`` ``(N,)`` (nats) in :data:`ENTROPY_BINS` equal bins over :data:`ENTROPY_RANGE`,
    int64 ``(ENTROPY_BINS,)`` on the CPU; values beyond the range count in the end bins."""
    lo, hi = ENTROPY_RANGE
    idx = ((entropy.detach().float().cpu() - lo) / (hi - lo) * ENTROPY_BINS).floor().long().clamp_(0, ENTROPY_BINS - 1)
    return torch.bincount(idx, minlength=ENTROPY_BINS)


class EntPropStep(_LinfSteps):
    """EntProp(k, n): MixUp, entropy-selected free adversarial training through the auxiliary BatchNorms.

    Each epoch's history record gets ``entropy_selected`` and ``entropy_unselected`` (mean predictive
    entropy in nats, on the main pass's mixed images) and ``entropy_hist_selected`` /
    ``entropy_hist_unselected`` (:func:`entropy_histogram` counts), to show how the selection moves in training.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: the last batch's predictive entropies (nats) and the indices selected
        self.last_selection: dict | None = None
        self._hist = {"selected": torch.zeros(ENTROPY_BINS, dtype=torch.int64),
                      "unselected": torch.zeros(ENTROPY_BINS, dtype=torch.int64)}
        self._sums = {"selected": 0.0, "unselected": 0.0}

    def _record(self, entropy: torch.Tensor, chosen: torch.Tensor) -> None:
        mask = torch.zeros(entropy.shape[0], dtype=torch.bool, device=entropy.device)
        mask[chosen] = True
        for name, part in (("selected", entropy[mask]), ("unselected", entropy[~mask])):
            self._hist[name] += entropy_histogram(part)
            self._sums[name] += float(part.sum())

    def epoch_summary(self) -> dict:
        out = {}
        for name in ("selected", "unselected"):
            count = int(self._hist[name].sum())
            out[f"entropy_{name}"] = self._sums[name] / count if count else float("nan")
            out[f"entropy_hist_{name}"] = self._hist[name].tolist()
            self._hist[name].zero_()
            self._sums[name] = 0.0
        return out

    def __call__(self, x, y):
        alpha, steps = self.cfg.step_size(), self.cfg.attack_steps
        xm, y_a, y_b, lam = mixup_batch(x, y, self.cfg.mixup_alpha)
        xm = xm.detach().requires_grad_(True)
        self.opt.zero_grad(set_to_none=True)
        out = self.logits(xm)  # main BatchNorms
        loss_main = mixed_cross_entropy(out, y_a, y_b, lam, label_smoothing=self.cfg.label_smoothing)
        loss_main.backward()  # the weights' gradient of L_m and the input gradient, from one pass
        self.passes.add(x.shape[0])
        chosen = select_highest_entropy(out, self.cfg.entprop_k)
        self.last_selection = {"entropy": predictive_entropy(out.detach()), "selected": chosen}
        self._record(self.last_selection["entropy"], chosen)
        xs, ys_a, ys_b = xm.detach()[chosen], y_a[chosen], y_b[chosen]
        delta = self.project(xs, alpha * xm.grad[chosen].sign())  # the first step reuses the main pass's gradient
        with auxiliary_bn(self.model):
            for _ in range(steps):
                d = delta.clone().requires_grad_(True)
                loss_aux = mixed_cross_entropy(self.logits(channels_last(xs + d)), ys_a, ys_b, lam,
                                               label_smoothing=self.cfg.label_smoothing)
                (loss_aux / steps).backward()  # accumulates L_c's weight gradient; d.grad moves delta
                self.passes.add(xs.shape[0])
                delta = self.project(xs, delta + alpha * d.grad.sign())
        self.finish(None)  # L_m's and L_c's gradients are in place
        return loss_main.detach() * x.shape[0], _mixed_correct(out.detach(), y_a, y_b, lam), x.shape[0]


ENTPROP_STEPS: dict[str, type[Step]] = {"mixup": MixUpStep, "advprop": AdvPropStep, "entprop": EntPropStep}
