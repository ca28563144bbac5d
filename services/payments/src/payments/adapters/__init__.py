"""The database, the card vault and the card processor behind the application's ports."""
