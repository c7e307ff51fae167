"""assay_backends — not built yet.

This layer of assay holds no public API yet; see the package README for its plan.
"""

__all__: list[str] = []
