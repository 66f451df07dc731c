"""Faithful local stand-ins for the third parties we cannot reach: the four platforms'
publishing APIs, M06 (media) and M10 (connected accounts), each a real HTTP server on
loopback. The tests and `distribution dev` start them; production never imports them."""
