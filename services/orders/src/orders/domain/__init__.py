"""The order aggregate and its rules; imports nothing that does I/O."""
