"""assay — the meta-package that ships every layer together."""

__all__: list[str] = []
