"""What travels between client, server and workers: a JSON manifest plus content-addressed blobs."""
