"""The dispatcher: runs each dispatch's ready nodes on their executors, inside the server."""
