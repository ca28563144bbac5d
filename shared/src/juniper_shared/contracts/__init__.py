"""Event contracts: the envelope, every event type, and the topic registry."""
