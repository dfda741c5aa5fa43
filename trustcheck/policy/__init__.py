"""Policy: the one pattern language, the model, loading and the one decide()."""
