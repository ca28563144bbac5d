"""Pure rules: what to tell the buyer, with no I/O."""
