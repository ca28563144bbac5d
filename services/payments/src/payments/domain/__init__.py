"""The payment of one invoice: its attempts and the rules between them. No I/O."""
