"""Randomized smoothing (Cohen, Rosenfeld & Kolter, 2019): a certifiably L2-robust classifier around any model.

The smoothed classifier of a base classifier ``f`` is ``g(x) = argmax_c P(f(x + e) = c)`` with
``e ~ N(0, sigma^2 I)`` added to the ``[0, 1]`` pixels (the model normalises inside; the noisy
images are not clipped).  If the top class has probability ``p_A >= 0.5`` under the noise, ``g``
is constant within the L2 ball of radius ``sigma * Phi^-1(p_A)`` around ``x``.  Both procedures
estimate ``p_A`` by Monte Carlo, exactly as Cohen et al.'s PREDICT and CERTIFY:

* :meth:`SmoothedClassifier.predict` (``n``, ``alpha``): the two most frequent classes' counts
  ``n_A, n_B`` among ``n`` noisy copies; abstain unless a two-sided binomial test of ``n_A`` out of
  ``n_A + n_B`` against 1/2 has p-value ``<= alpha`` (:func:`scipy.stats.binomtest`);
* :meth:`SmoothedClassifier.certify` (``n0``, ``n``, ``alpha``): guess the class from ``n0``
  copies, count it among ``n`` fresh ones, take the one-sided Clopper-Pearson lower bound
  ``p_lower`` at level ``1 - alpha`` (:func:`clopper_pearson_lower`); abstain if ``p_lower < 0.5``,
  else certify radius ``sigma * Phi^-1(p_lower)`` (:func:`certified_radius`).

Unlike the reference code, which loops over images and samples in Python, a whole batch of images
is certified at once: the noisy copies of several images share a forward pass and the votes are
counted with one ``bincount`` on the model's device.  The noise of each image is drawn from its own
generator, seeded from ``seed``, the procedure's stage (selection, estimation, prediction) and the
image's pixels, in fixed blocks of :data:`NOISE_BLOCK` copies: an image gets the same noise,
and so the same certificate, whether it is certified alone or in a batch, at any ``batch_size``,
and different images get independent noise.

What a certificate is worth (:func:`certified_accuracy`, :func:`average_certified_radius`) is
measured against the labels.  :func:`smoothing_votes` gathers one image's noisy copies and votes for
a figure (notebook 07's explorer).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats
from torch import nn

from ..data import check_images
from ..runtime import autocast, autocast_dtype, frozen_eval, model_dtype_device

__all__ = ["SmoothedClassifier", "Certificate", "ABSTAIN", "NOISE_BLOCK", "clopper_pearson_lower", "certified_radius",
           "certified_accuracy", "average_certified_radius", "radius_definitions", "smoothing_votes"]

#: The class reported when the smoothed classifier abstains.
ABSTAIN = -1
#: Noisy copies drawn per call to the noise generator (a fixed size, so that an image's noise does not
#: depend on how the copies are packed into batches).
NOISE_BLOCK = 128
_STAGES = {"select": 0, "estimate": 1, "predict": 2}


def clopper_pearson_lower(count, n, alpha: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower confidence bound at level ``1 - alpha`` on a binomial proportion.

    ``count`` successes out of ``n`` trials (numbers or arrays of the same shape): the ``alpha``
    quantile of Beta(count, n - count + 1), and 0 where ``count == 0``.  Cohen et al. compute the
    same number as the lower end of statsmodels' two-sided "beta" interval at ``2 * alpha``.

    Returns:
        float64 array (a 0-d array for scalar input) in ``[0, 1]``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) (the bound fails with probability alpha), got {alpha}.")
    count, n = np.asarray(count, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if np.any(n < 1) or np.any(count < 0) or np.any(count > n):
        raise ValueError("clopper_pearson_lower needs 0 <= count <= n and n >= 1.")
    with np.errstate(invalid="ignore"):
        bound = stats.beta.ppf(alpha, count, n - count + 1)
    return np.where(count == 0, 0.0, bound)


def certified_radius(p_lower, sigma: float) -> np.ndarray:
    """L2 radius ``sigma * Phi^-1(p_lower)`` (in ``[0, 1]`` pixel units) where ``p_lower >= 0.5``, else 0.

    ``p_lower``: a lower bound on the top class's probability under ``N(0, sigma^2 I)`` noise.
    """
    _check_sigma(sigma)
    p = np.asarray(p_lower, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p_lower must be a probability in [0, 1].")
    with np.errstate(divide="ignore"):
        return np.where(p >= 0.5, sigma * stats.norm.ppf(p), 0.0)


def _check_sigma(sigma: float) -> None:
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number (the noise's standard deviation on the [0, 1] pixel "
                         f"scale, e.g. 0.25), got {sigma!r}.")


@dataclasses.dataclass
class Certificate:
    """What :meth:`SmoothedClassifier.certify` returns for ``N`` images.

    Attributes:
        prediction: int64 ``(N,)``: the certified class, or :data:`ABSTAIN` (-1).
        radius: float64 ``(N,)``: certified L2 radius on the ``[0, 1]`` pixel scale (0 where abstained).
        p_lower: float64 ``(N,)``: the Clopper-Pearson lower bound on the selected class's probability.
        counts: int64 ``(N, K)``: votes of the ``n`` estimation copies.
        selected: int64 ``(N,)``: the class the ``n0`` selection copies chose (also where abstained).
        n0, n, alpha, sigma: the settings.
    """

    prediction: torch.Tensor
    radius: torch.Tensor
    p_lower: torch.Tensor
    counts: torch.Tensor
    selected: torch.Tensor
    n0: int
    n: int
    alpha: float
    sigma: float

    @property
    def abstained(self) -> torch.Tensor:
        """Bool ``(N,)``: where the smoothed classifier abstained."""
        return self.prediction == ABSTAIN

    def correct(self, labels: torch.Tensor) -> torch.Tensor:
        """Bool ``(N,)``: certified and equal to ``labels``."""
        return self.prediction == labels.to(self.prediction.device)


class SmoothedClassifier:
    """Gaussian randomized smoothing of ``base`` (Cohen et al. 2019), batched over images.

    Args:
        base: classifier taking float images ``(N, C, H, W)`` (any range: noisy copies leave
            ``[0, 1]``) and returning logits ``(N, num_classes)``; used in eval mode, its modes restored.
        num_classes: K.
        sigma: standard deviation of the noise on the ``[0, 1]`` pixel scale.
        seed: seeds the noise (with the stage and each image's pixels): equal calls give equal results.
        precision: ``"fp32"`` (default: the same votes on every CPU, up to rounding) or ``"auto"``
            (bf16 autocast where the hardware computes it natively: faster, and votes near a
            decision boundary may change).
    """

    def __init__(self, base: nn.Module, num_classes: int, sigma: float, *, seed: int = 0, precision: str = "fp32"):
        _check_sigma(sigma)
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
        if precision not in ("fp32", "auto"):
            raise ValueError(f"precision must be 'fp32' or 'auto', got {precision!r}.")
        self.base, self.num_classes, self.sigma = base, int(num_classes), float(sigma)
        self.seed, self.precision = int(seed), precision

    # -- sampling ------------------------------------------------------------------------------------
    def _keys(self, x: torch.Tensor, stage: str) -> list[int]:
        pixels = x.detach().to("cpu", torch.float32).contiguous().numpy()
        head = f"{self.seed}/{_STAGES[stage]}/{self.sigma!r}/".encode()
        return [int.from_bytes(hashlib.blake2b(head + img.tobytes(), digest_size=8).digest(), "little") >> 1
                for img in pixels]

    def sample_counts(self, x: torch.Tensor, n: int, *, batch_size: int = 1024, stage: str = "estimate",
                      progress: bool = False) -> torch.Tensor:
        """Votes of the base classifier on ``n`` noisy copies of each image.

        Args:
            x: float images ``(N, C, H, W)`` in ``[0, 1]``; not modified.
            n: noisy copies per image (>= 1).
            batch_size: noisy copies per forward pass (copies of several images share one).
            stage: ``"select"``, ``"estimate"`` or ``"predict"``: which of the image's independent noise
                streams to draw from (CERTIFY's selection and estimation samples must be independent).
            progress: a tqdm bar over the images.

        Returns:
            int64 ``(N, K)`` counts on the CPU; each row sums to ``n``.
        """
        x = self._check_x(x)
        n, batch_size = _positive_int(n, "n"), _positive_int(batch_size, "batch_size")
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {', '.join(_STAGES)}, got {stage!r}.")
        dtype, device = model_dtype_device(self.base, x)
        x = x.to(device, dtype)
        keys = self._keys(x, stage)
        k, num = self.num_classes, x.shape[0]
        counts = torch.zeros(num * k, dtype=torch.int64, device=device)
        capacity = max(batch_size, min(n, NOISE_BLOCK))
        buf = torch.empty((capacity, *x.shape[1:]), dtype=dtype, device=device)
        owner = torch.empty(capacity, dtype=torch.int64, device=device)
        amp = autocast_dtype(device, "auto") if self.precision == "auto" else None
        fill = 0

        def flush():
            with autocast(device, amp):
                out = self.base(buf[:fill])
            pred = out.argmax(1)
            counts.add_(torch.bincount(owner[:fill] * k + pred, minlength=num * k))

        from tqdm.auto import tqdm

        with frozen_eval(self.base), torch.inference_mode(), \
                tqdm(total=num, desc="smoothing (images)", disable=not progress, leave=False) as bar:
            for i in range(num):
                gen = torch.Generator(device=device).manual_seed(keys[i])
                for start in range(0, n, NOISE_BLOCK):
                    b = min(NOISE_BLOCK, n - start)
                    if fill + b > capacity:
                        flush()
                        fill = 0
                    self._noisy_copies(buf[fill:fill + b], x[i], gen)
                    owner[fill:fill + b] = i
                    fill += b
                bar.update(1)
            if fill:
                flush()
        return counts.view(num, k).cpu()

    def _noisy_copies(self, block: torch.Tensor, image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Fill ``block`` ``(b, C, H, W)`` with ``image + N(0, sigma^2)`` noise drawn from ``gen`` (the one place
        where noise is drawn, so that :meth:`_first_noisy_copies` repeats :meth:`sample_counts`'s copies)."""
        return block.normal_(0.0, self.sigma, generator=gen).add_(image)

    def _first_noisy_copies(self, image: torch.Tensor, count: int, n: int, *, stage: str = "predict") -> torch.Tensor:
        """The first ``count`` of the ``n`` noisy copies :meth:`sample_counts` votes on for one image.

        ``image``: float ``(C, H, W)`` in ``[0, 1]``; ``1 <= count <= min(n, NOISE_BLOCK)``.  Returns float32
        ``(count, C, H, W)`` on the CPU, not clipped: exactly the inputs of the base classifier's first
        forward pass in ``sample_counts(image[None], n, stage=stage)``.
        """
        x = self._check_x(image[None])
        n, count = _positive_int(n, "n"), _positive_int(count, "count")
        if count > min(n, NOISE_BLOCK):
            raise ValueError(f"count must be at most min(n, {NOISE_BLOCK}) = {min(n, NOISE_BLOCK)}, got {count}.")
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {', '.join(_STAGES)}, got {stage!r}.")
        dtype, device = model_dtype_device(self.base, x)
        x = x.to(device, dtype)
        gen = torch.Generator(device=device).manual_seed(self._keys(x, stage)[0])
        block = torch.empty((min(n, NOISE_BLOCK), *x.shape[1:]), dtype=dtype, device=device)
        return self._noisy_copies(block, x[0], gen)[:count].to("cpu", torch.float32)

    @staticmethod
    def _check_x(x: torch.Tensor) -> torch.Tensor:
        check_images(x, name="x")
        return x

    # -- Cohen et al.'s procedures -------------------------------------------------------------------
    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int = 1024, *,
                progress: bool = False) -> torch.Tensor:
        """PREDICT: the smoothed class of each image, or :data:`ABSTAIN`.

        Abstains unless the two-sided binomial test of the top count ``n_A`` out of ``n_A + n_B``
        (``n_B``: the runner-up's count) against 1/2 has p-value ``<= alpha``; then the returned class
        differs from ``g(x)`` with probability at most ``alpha``.

        Returns:
            int64 ``(N,)`` on the CPU.
        """
        _check_alpha(alpha)
        counts = self.sample_counts(x, n, batch_size=batch_size, stage="predict", progress=progress)
        return _binomial_test_prediction(counts, alpha)

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 1024, *,
                progress: bool = False) -> Certificate:
        """CERTIFY: a class and an L2 radius per image within which the smoothed class cannot change.

        With probability at least ``1 - alpha`` over the noise, each returned (class, radius) is
        right: ``g`` predicts that class everywhere in the ball.  Cohen et al.'s defaults are
        ``n0 = 100, n = 100_000, alpha = 0.001``.

        Args:
            x: float images ``(N, C, H, W)`` in ``[0, 1]``; not modified.
            n0: selection copies per image; n: estimation copies per image; alpha in (0, 1).
            batch_size: noisy copies per forward pass; progress: tqdm bars.
        """
        _check_alpha(alpha)
        n0, n = _positive_int(n0, "n0"), _positive_int(n, "n")
        selected = self.sample_counts(x, n0, batch_size=batch_size, stage="select", progress=progress).argmax(1)
        counts = self.sample_counts(x, n, batch_size=batch_size, stage="estimate", progress=progress)
        n_a = counts.gather(1, selected[:, None])[:, 0]
        p_lower = torch.from_numpy(np.atleast_1d(clopper_pearson_lower(n_a.numpy(), n, alpha)))
        radius = torch.from_numpy(np.atleast_1d(certified_radius(p_lower.numpy(), self.sigma)))
        prediction = torch.where(p_lower >= 0.5, selected, torch.full_like(selected, ABSTAIN))
        return Certificate(prediction=prediction, radius=radius, p_lower=p_lower, counts=counts, selected=selected,
                           n0=n0, n=n, alpha=float(alpha), sigma=self.sigma)


def _binomial_test_prediction(counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """PREDICT's answer from int64 ``(N, K)`` votes: the top class, or :data:`ABSTAIN` unless the two-sided
    binomial test of ``n_A`` out of ``n_A + n_B`` against 1/2 has p-value ``<= alpha``.  int64 ``(N,)``."""
    top2 = counts.topk(2, dim=1)
    n_a, n_b = top2.values[:, 0].tolist(), top2.values[:, 1].tolist()
    out = top2.indices[:, 0].clone()
    for i, (a, b) in enumerate(zip(n_a, n_b)):
        if stats.binomtest(a, a + b, 0.5).pvalue > alpha:
            out[i] = ABSTAIN
    return out


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ValueError(f"alpha must be in (0, 1) (the probability that the answer is wrong, e.g. 0.001), "
                         f"got {alpha!r}.")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def smoothing_votes(base: nn.Module, image: torch.Tensor, sigma: float, n: int, *, num_classes: int,
                    alpha: float = 0.001, n_show: int = 8, seed: int = 0) -> dict:
    """One image's votes under noise, for a figure: what PREDICT answers and the radius the same votes suggest.

    All numbers come from ONE sample of ``n`` noisy copies, PREDICT's (``stage="predict"`` of
    :class:`SmoothedClassifier` with this ``seed``; ``predict`` returns the same class).  A real
    certificate (:meth:`SmoothedClassifier.certify`) picks the class on ``n0`` selection copies and
    bounds its probability on ``n`` other, independent ones; reusing the copies that chose the class,
    as here, makes ``p_lower`` and ``radius`` illustrations, not certificates.  PREDICT's test and the
    bound can disagree: with the votes split over three classes PREDICT may name a class while
    ``p_lower < 0.5`` (radius 0), and where the top class only just clears one half the one-sided
    bound may reach 0.5 (radius > 0) while the two-sided test still abstains.

    Args:
        base: classifier taking float images ``(N, C, H, W)`` and returning logits ``(N, num_classes)``;
            run in eval mode, each submodule's mode and ``requires_grad`` restored.
        image: ONE float image ``(C, H, W)`` in ``[0, 1]``; not modified.
        sigma: noise standard deviation on the ``[0, 1]`` pixel scale (> 0, e.g. 0.25).
        n: noisy copies voted on (>= 1).
        num_classes: K (>= 2).
        alpha: PREDICT's test level and the bound's ``1 - alpha`` confidence, in (0, 1).
        n_show: noisy copies returned for display, ``1 <= n_show <= min(n, NOISE_BLOCK)``.
        seed: seeds the noise (equal calls give equal results).

    Returns:
        ``{"copies", "counts", "prediction", "top", "p_lower", "radius", "n"}``: ``copies`` float32
        ``(n_show, C, H, W)``, the first ``n_show`` of the ``n`` copies voted on (not clipped: values
        leave ``[0, 1]``); ``counts`` int64 ``(K,)`` votes, summing to ``n``; ``prediction`` PREDICT's
        class (int) or :data:`ABSTAIN`; ``top`` the most-voted class (int, lowest index on a tie);
        ``p_lower`` the one-sided Clopper-Pearson lower bound at ``1 - alpha`` on ``top``'s share
        (float in ``[0, 1]``); ``radius`` ``sigma * Phi^-1(p_lower)`` in L2 ``[0, 1]`` pixel units
        (float, 0 where ``p_lower < 0.5``); ``n`` (int).
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be ONE image (C, H, W) in [0, 1], got {shape}.")
    _check_alpha(alpha)
    n, n_show = _positive_int(n, "n"), _positive_int(n_show, "n_show")
    if n_show > min(n, NOISE_BLOCK):
        raise ValueError(f"n_show must be at most min(n, {NOISE_BLOCK}) = {min(n, NOISE_BLOCK)}, got {n_show}.")
    smoothed = SmoothedClassifier(base, num_classes, sigma, seed=seed)  # checks sigma and num_classes
    counts = smoothed.sample_counts(image[None], n, stage="predict")
    prediction = int(_binomial_test_prediction(counts, alpha)[0])
    counts = counts[0]
    top = int(counts.argmax())
    p_lower = float(clopper_pearson_lower(int(counts[top]), n, alpha))
    return {"copies": smoothed._first_noisy_copies(image, n_show, n, stage="predict"), "counts": counts,
            "prediction": prediction, "top": top, "p_lower": p_lower,
            "radius": float(certified_radius(p_lower, smoothed.sigma)), "n": n}


# -- what certificates are worth ---------------------------------------------------------------------
def _as_arrays(prediction, radius, labels):
    pred = np.asarray(torch.as_tensor(prediction).cpu(), dtype=np.int64)
    rad = np.asarray(torch.as_tensor(radius).cpu(), dtype=np.float64)
    lab = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64)
    if not pred.shape == rad.shape == lab.shape or pred.ndim != 1:
        raise ValueError(f"prediction, radius and labels must be 1-D of one length, got shapes "
                         f"{pred.shape}, {rad.shape}, {lab.shape}.")
    if np.any(~np.isfinite(rad)) or np.any(rad < 0):
        raise ValueError("radius must be finite and >= 0.")
    return pred, rad, lab


def certified_accuracy(prediction, radius, labels, radii: Sequence[float]) -> np.ndarray:
    """Fraction of images certified correct with radius at least ``r``, for each ``r`` in ``radii``.

    ``prediction`` (N,) with :data:`ABSTAIN` for abstentions, ``radius`` (N,) in L2 pixel units,
    ``labels`` (N,).  At ``r = 0`` this is the smoothed classifier's accuracy with abstentions counted
    wrong (Cohen et al.'s "certified accuracy" curve).

    Returns:
        float64 array ``(len(radii),)`` in ``[0, 1]``, non-increasing in ``r``.
    """
    pred, rad, lab = _as_arrays(prediction, radius, labels)
    radii = np.asarray(radii, dtype=np.float64)
    if radii.ndim != 1 or np.any(radii < 0) or np.any(~np.isfinite(radii)):
        raise ValueError("radii must be a 1-D list of finite radii >= 0.")
    correct = pred == lab
    if len(pred) == 0:
        return np.full(radii.shape, np.nan)
    return np.array([(correct & (rad >= r)).mean() for r in radii])


def average_certified_radius(prediction, radius, labels, *, over: str = "all") -> float:
    """Average certified L2 radius, in one of the two definitions in use.

    * ``over="all"`` (ACR, Zhai et al. 2020): the mean over *all* images of the radius where the
      certified class is correct and 0 elsewhere (abstained or wrong).  It equals the area under
      the certified-accuracy curve, ``integral_0^inf certified_accuracy(r) dr``.
    * ``over="certified_correct"``: the mean radius of the images that were certified correctly
      only (nan if there are none).  A model that certifies few images, but those far from its
      decision boundary, scores high here while its certified accuracy is low.

    Returns:
        float, in the pixel units of ``radius``.
    """
    pred, rad, lab = _as_arrays(prediction, radius, labels)
    correct = pred == lab
    if over == "all":
        return float(np.where(correct, rad, 0.0).mean()) if len(pred) else float("nan")
    if over == "certified_correct":
        return float(rad[correct].mean()) if correct.any() else float("nan")
    raise ValueError(f"over must be 'all' or 'certified_correct', got {over!r}.")


def radius_definitions(prediction, radius, labels) -> dict:
    """Both average radii and the counts behind them, for a table.

    Returns:
        ``{"n", "certified_correct", "abstained", "acr_all", "mean_radius_certified_correct"}``.
    """
    pred, rad, lab = _as_arrays(prediction, radius, labels)
    return {"n": int(len(pred)), "certified_correct": int((pred == lab).sum()),
            "abstained": int((pred == ABSTAIN).sum()),
            "acr_all": average_certified_radius(pred, rad, lab, over="all"),
            "mean_radius_certified_correct": average_certified_radius(pred, rad, lab, over="certified_correct")}
