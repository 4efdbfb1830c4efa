"""Use cases: what the CLI and the API ask for, built on the domain, geo data and storage."""
