"""Label correction: ``make label`` finds mislabelled, duplicate and junk images with a run's model and
writes a review page (label/stage.py); ``make apply-labels`` turns the review's decisions, or an automatic
policy, into a new data version (label/apply.py)."""
