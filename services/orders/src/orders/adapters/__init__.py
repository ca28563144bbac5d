"""I/O: MongoDB repositories and Kafka wiring."""
