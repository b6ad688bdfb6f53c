"""``python -m harness tune``: the fastest configuration that keeps an accuracy target.

Candidates (:mod:`.candidates`) come from every installed backend and speed option; each
one's arithmetic is scored first on the held-out questions (:mod:`.gate`, cached by model
digest and options) and one below the target is discarded; the survivors race in short
LoadGen runs, each measured as a ratio to the fp32 default run beside it (:mod:`.speed`,
successive halving); the winner, the Pareto front, a table, a PNG, an HTML page and a
reusable ``tuned.toml`` are written by :mod:`.report`.
"""
