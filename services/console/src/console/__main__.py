"""`python -m console` starts the seller console (HTTP only; it calls the four APIs)."""

from console.bootstrap import main

main()
