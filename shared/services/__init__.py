"""Services take a SQLAlchemy session, do one piece of work and never commit: the caller does."""
