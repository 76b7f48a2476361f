"""The lab: evaluation (metrics, validation, real photos, the judge classifier's training) and
experiments (the methods table, studies and sweeps, the benchmark, figures, shipping a generator)."""
