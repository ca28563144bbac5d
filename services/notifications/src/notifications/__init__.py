"""Notifications service: emails the buyer about their orders and invoices."""
