"""Sanity checks of a robustness evaluation against gradient masking (Athalye et al., 2018)."""
from __future__ import annotations

from typing import Sequence

__all__ = ["gradient_masking_checks"]


def _non_increasing(values: Sequence[float], slack: float) -> tuple[bool, float]:
    """Whether ``values`` never rise by more than ``slack``; and the largest rise."""
    rises = [b - a for a, b in zip(values, values[1:])]
    worst = max(rises, default=0.0)
    return worst <= slack + 1e-12, worst


def gradient_masking_checks(eps_values: Sequence[float], pgd_acc: Sequence[float], n: int, *,
                            fgsm_acc: Sequence[float] | None = None, max_acc_at_largest_eps: float = 0.02,
                            steps_curves: dict | None = None, restarts_curves: dict | None = None,
                            slack_images: int = 1, restarts_slack_images: int = 0) -> list[dict]:
    """Sanity checks of a robustness evaluation against gradient masking (Athalye et al., 2018).

    An attack that relies on gradients underestimates a model's vulnerability when the gradients
    are uninformative; the symptoms checked here are:

    * the iterative attack is weaker than the single step (PGD accuracy > FGSM accuracy);
    * accuracy does not fall with the budget, or stays well above 0 at a huge budget;
    * more steps or more random restarts make the attack weaker.

    Args:
        eps_values: the budgets of the curves, increasing (Linf budgets or L2 radii).
        pgd_acc: accuracies (fractions) under PGD at each budget.
        n: number of images the accuracies were measured on (sets the slack of one image).
        fgsm_acc: accuracies under FGSM at the same budgets (None: no PGD-vs-FGSM check, e.g. for L2).
        max_acc_at_largest_eps: the PGD accuracy allowed at the largest budget.
        steps_curves: ``{label: accuracies ordered by increasing number of steps}`` (runs that
            differ only in the number of steps, e.g. without random start).
        restarts_curves: ``{label: accuracies ordered by increasing number of restarts}`` (runs
            sharing their random starts, as :func:`pgd_accuracy_grid` makes them).
        slack_images: images by which a comparison may go the "wrong" way (floating-point ties).
        restarts_slack_images: the same for restarts (0: they can only help).

    Returns:
        One dict per check: ``check`` (what is checked), ``passed`` (bool), ``detail`` (the numbers),
        and ``value`` and ``bound``: each check passes when ``value <= bound`` (fractions of images),
        so a notebook can assert them with :meth:`labutils.course.claims.Claims.at_most`.
    """
    eps_values, pgd_acc = list(map(float, eps_values)), list(map(float, pgd_acc))
    if len(eps_values) != len(pgd_acc) or not eps_values:
        raise ValueError(f"eps_values and pgd_acc must have the same non-zero length, got "
                         f"{len(eps_values)} and {len(pgd_acc)}.")
    if fgsm_acc is not None and len(fgsm_acc) != len(eps_values):
        raise ValueError(f"fgsm_acc must have one accuracy per budget ({len(eps_values)}), got {len(fgsm_acc)}.")
    if any(b < a for a, b in zip(eps_values, eps_values[1:])):
        raise ValueError("eps_values must be increasing.")
    if n < 1:
        raise ValueError(f"n must be the number of images (>= 1), got {n}.")
    slack = slack_images / n
    rows = []
    if fgsm_acc is not None:
        worst = max(p - float(f) for f, p in zip(fgsm_acc, pgd_acc))
        rows.append({"check": "PGD at least as strong as FGSM at every budget", "passed": worst <= slack + 1e-12,
                     "detail": f"largest PGD - FGSM accuracy: {worst:+.2%} (allowed {slack:+.2%})",
                     "value": worst, "bound": slack + 1e-12})
    ok, rise = _non_increasing(pgd_acc, slack)
    rows.append({"check": "PGD accuracy never rises with the budget", "passed": ok,
                 "detail": f"largest change to the next point: {rise:+.2%} (rise allowed: {slack:.2%})",
                 "value": rise, "bound": slack + 1e-12})
    rows.append({"check": f"PGD accuracy <= {max_acc_at_largest_eps:.0%} at the largest budget",
                 "passed": pgd_acc[-1] <= max_acc_at_largest_eps + 1e-12,
                 "detail": f"accuracy {pgd_acc[-1]:.2%} at eps {eps_values[-1]:.4g}",
                 "value": pgd_acc[-1], "bound": max_acc_at_largest_eps + 1e-12})
    for what, curves, allowed in (("steps", steps_curves, slack), ("restarts", restarts_curves,
                                                                    restarts_slack_images / n)):
        for label, accs in (curves or {}).items():
            ok, rise = _non_increasing([float(a) for a in accs], allowed)
            rows.append({"check": f"more {what} never weaker ({label})", "passed": ok,
                         "detail": f"largest change to the next point: {rise:+.2%} "
                                   f"(rise allowed: {allowed:.2%})",
                         "value": rise, "bound": allowed + 1e-12})
    return rows
