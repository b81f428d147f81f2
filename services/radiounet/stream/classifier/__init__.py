"""The classifier stage: probability map -> R, decision, component catalogue, result JSON.

:mod:`.results` builds the per-pointing result rows and the results table
(pure, plus :func:`~.results.load_results`); :mod:`.service` is the stage.
"""
