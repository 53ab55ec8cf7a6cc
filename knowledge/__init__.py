"""Knowledge base: documents -> chunks -> vector + full-text index -> hybrid retrieval (see README.md)."""
