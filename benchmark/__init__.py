"""The MIT benchmark: ``evaluate`` metric modules (``benchmark/metrics``) and the ``mit-bench`` runner
(``benchmark.cli``): submission validation, Table 2 scoring, results JSON, model cards, leaderboards and
predictions with ``CovOGPipeline``. Import the submodules you need; this package imports nothing heavy."""
