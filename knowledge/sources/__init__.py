"""Sources of document events: HTTP upload, a watched folder, the CDC change topic."""
