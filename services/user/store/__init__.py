"""Every SQL statement of the User service (schema `users`), on SQLAlchemy Core: the tables in
`tables`, one module per resource. Every method over a user's data takes that user's id as a
parameter and filters by it; the servicer passes the id from the verified token."""
