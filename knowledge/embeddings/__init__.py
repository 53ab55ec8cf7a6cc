"""Text embedding backends (one module per backend, picked by name in ``registry``)."""
