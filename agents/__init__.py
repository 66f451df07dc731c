"""Stream agents and timers: thin loops that hand work to app.handlers and app.db."""
