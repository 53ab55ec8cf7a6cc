"""HTTP: the aiohttp application of a node (call API, health, metrics, pages), auth, and the admin API."""
