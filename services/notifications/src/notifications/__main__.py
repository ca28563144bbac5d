"""`python -m notifications` starts the notifications service (HTTP + Kafka consumers)."""

from notifications.bootstrap import main

main()
