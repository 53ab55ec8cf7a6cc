"""Knowledge stores: vector + full-text indexes of chunks (embedded SQLite file, or PostgreSQL)."""
