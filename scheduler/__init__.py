"""Jobs that produce events: intent analysis of recent conversations, outreach campaigns and callbacks.

- ``scheduler.service.SchedulerService``: APScheduler (asyncio) with a persistent SQLAlchemy job store;
  ``start()``/``stop()`` inside ``serve`` or as ``voice-agent scheduler`` (both composed by ``server.node``).
- ``scheduler.client.SchedulerClient``: the same API for a process that does not run the jobs.
- ``scheduler.campaigns``: campaign model and store; ``scheduler.outreach``: rate limit, quiet hours and
  delivery rows; ``scheduler.publishing``: ``ProactivePrompt`` messages on the bus.
"""
