"""HTTP views: parse, ask the command agent, render."""
