"""Security of a node: signed call tokens and WebSocket tickets, admin principals (global or one tenant),
ephemeral TURN credentials, rate limits, browser hardening, a redacting access log and start-up checks of
the secrets. ``server.http.guards`` applies them to requests; README.md ("Security") says how to use them."""
