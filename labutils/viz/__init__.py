"""Pictures: :mod:`.plots` (matplotlib figures of images, scores and robustness curves) and
:mod:`.widgets` (interactive explorers, thin shells over pure functions that also draw headless).

Later: reliability diagrams, risk-coverage curves, entropy histograms.
"""
