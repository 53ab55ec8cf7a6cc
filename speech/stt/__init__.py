"""Speech-to-text: a Protocol and its backends (one module each), chosen by ``registry.create_stt``."""
