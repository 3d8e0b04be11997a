"""Adversarial attacks on image classifiers.

* :mod:`.gradient`: FGSM and PGD (Linf / L2), the course's own implementations (per-sample
  budgets, bf16, restarts; equal to torchattacks' in fp32, which the tests check), and
  :func:`perturbation_norms`;
* :mod:`.adapter`: torchattacks' other attacks (DeepFool, CW, Square, AutoAttack) behind the
  same calling convention;
* :mod:`.checks`: argument checks and Madry et al.'s default step size.

What an attack does to a model's accuracy (curves over budgets, targeted success matrices,
gradient-masking checks) is measured in :mod:`labutils.robustness`.
"""
from .adapter import TORCHATTACKS_ATTACKS, torchattacks_attack
from .checks import default_pgd_alpha
from .gradient import fgsm, perturbation_norms, pgd

__all__ = ["fgsm", "pgd", "perturbation_norms", "torchattacks_attack", "TORCHATTACKS_ATTACKS", "default_pgd_alpha"]
