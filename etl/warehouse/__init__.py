"""Where the data lives: connections, the schema and its version, a private local cluster."""
