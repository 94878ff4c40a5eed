"""Signal receivers; filled by the email outbox."""
