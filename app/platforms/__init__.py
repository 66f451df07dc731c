"""Platform adapters: one interface, a simulated stand-in and an HTTP gateway client."""
