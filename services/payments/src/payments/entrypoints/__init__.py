"""HTTP routes and Kafka subscribers: translate, call a handler, nothing else."""
