"""assay_scope — hyperparameter scopes (being built)."""

__all__: list[str] = []
