"""One handler per command or event; ports as Protocols."""
