"""Pure rules of distribution items: standard library only, the clock passed in."""
