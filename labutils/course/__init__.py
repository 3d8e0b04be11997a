"""Running the course: :mod:`.profiles` (smoke / standard / full settings), :mod:`.runner` (executes
the notebooks, ``make run``), :mod:`.report` (metrics, figures, report.md), :mod:`.claims`
(assertions about trained models with their margins), :mod:`.seeds` (``make seeds``),
:mod:`.timing` (run-time estimates), :mod:`.conditions` (what each notebook of a run ran under),
:mod:`.runtimes` (the README's notebooks table from run reports), :mod:`.links` (repository, Colab and
Binder links), :mod:`.assignments` (nbgrader student versions, ``make student``), :mod:`.paths`
(repository root and the numbered notebooks), :mod:`.doctor` (``make doctor``), :mod:`.exercises` (check cells).
"""
