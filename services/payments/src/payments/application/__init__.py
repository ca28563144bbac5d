"""Handlers for invoice events and the seller's retry; ports the adapters implement."""
