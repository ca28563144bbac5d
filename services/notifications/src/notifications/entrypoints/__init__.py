"""HTTP routes and Kafka subscribers."""
