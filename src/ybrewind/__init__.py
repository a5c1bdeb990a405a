"""ybrewind: logical backup and point-in-time recovery for YugabyteDB and PostgreSQL."""

__version__ = "0.1.0"
