"""Operator tools for JuniperMarket: `python -m juniper_ops --help`."""
