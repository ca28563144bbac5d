"""`python -m orders` starts the orders service (HTTP + Kafka consumers in one process)."""

from orders.bootstrap import main

main()
