"""Running the course: :mod:`.profiles` (smoke / standard / full settings), :mod:`.runner` (executes
the notebooks, ``make run``), :mod:`.report` (metrics, figures, report.md), :mod:`.claims`
(assertions about trained models with their margins), :mod:`.seeds` (``make seeds``),
:mod:`.timing` (run-time estimates), :mod:`.doctor` (``make doctor``), :mod:`.exercises`
(check cells).
"""
