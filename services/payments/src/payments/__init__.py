"""Payments: charges the card of an issued invoice once, records every attempt, lets the seller retry."""
