"""The lab: evaluation (metrics, validation, real photos, the judge classifier's training) and
experiments (baselines, packed studies, the benchmark, figures, shipping a generator)."""
