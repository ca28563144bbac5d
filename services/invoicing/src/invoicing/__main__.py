"""`python -m invoicing` starts the invoicing service (HTTP + Kafka consumers in one process)."""

from invoicing.bootstrap import main

main()
