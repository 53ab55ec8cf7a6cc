from tests.messaging.harness import bus_backend, bus_factory, bus_topic  # noqa: F401
