"""`python -m payments` starts the payments service (HTTP + Kafka consumers + charge runner)."""

from payments.bootstrap import main

main()
